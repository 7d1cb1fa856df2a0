package imagegate.lib.rewrite_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.lib.rewrite

# Each raw image with its rewrite; images nothing rewrites are left out. Tests set the
# configuration with `with data.imagegate.config as ...`.
rewrites(raws) := {raw: rewritten |
	some raw in raws
	rewritten := rewrite.result(fixtures.reference(raw)).image
}

test_replace_keeps_path_tag_and_digest if {
	rewrites(["nginx:1.25", "ghcr.io/acme/app:1@sha256:abc", "quay.io/x/y@sha256:abc"]) == {
		"nginx:1.25": "mirror.example.com/library/nginx:1.25",
		"ghcr.io/acme/app:1@sha256:abc": "mirror.example.com/acme/app:1@sha256:abc",
		"quay.io/x/y@sha256:abc": "mirror.example.com/x/y@sha256:abc",
	} with data.imagegate.config as {"rewriteRegistry": "mirror.example.com/"}
}

test_a_target_may_carry_a_path if {
	rewrites(["nginx:1.27", "bitnami/redis:7"]) == {
		"nginx:1.27": "harbor.example.com/dockerhub-proxy/library/nginx:1.27",
		"bitnami/redis:7": "harbor.example.com/dockerhub-proxy/bitnami/redis:7",
	} with data.imagegate.config as {"rewriteRegistry": "harbor.example.com/dockerhub-proxy"}
}

prepend := {"rewriteRegistry": "cache.example.com/hub", "rewriteMode": "prepend"}

test_prepend_keeps_the_registry_as_a_component if {
	rewrites(["nginx", "ghcr.io/acme/app:1"]) == {
		"nginx": "cache.example.com/hub/docker.io/library/nginx",
		"ghcr.io/acme/app:1": "cache.example.com/hub/ghcr.io/acme/app:1",
	} with data.imagegate.config as prepend
}

# A port or an IPv6 address cannot be a path component: the image is left as it is,
# rather than turned into an invalid reference (which used to be refused downstream).
test_prepend_never_builds_an_invalid_reference if {
	unbuildable := [
		"localhost:5000/app:1",
		"registry.example.com:5443/app:1",
		"[::1]:5000/app:1",
		"[2001:db8::1]/app:1",
	]
	rewrites(unbuildable) == {} with data.imagegate.config as prepend
}

test_a_name_past_255_characters_is_not_built if {
	long := concat("", ["registry.example.com/", concat("", ["a" | some _ in numbers.range(1, 230)]), ":1"])
	rewrites([long]) == {} with data.imagegate.config as {"rewriteRegistry": "harbor.example.com/a-long-proxy-name"}
	count(rewrites([long])) == 1 with data.imagegate.config as {"rewriteRegistry": "m.io"}
}

mirrors := {
	"docker.io": "harbor.example.com/dockerhub-proxy",
	"ghcr.io": "harbor.example.com/ghcr-proxy",
	"ghcr.io/acme": "artifactory.example.com/acme-virtual",
	"localhost:5000": "harbor.example.com/local",
	"[::1]:5000": "harbor.example.com/loopback6",
}

test_mirrors_by_source if {
	rewrites([
		"nginx:1.27",
		"docker.io/library/nginx:1.26",
		"index.docker.io/bitnami/redis:7",
		"ghcr.io/other/tool:2",
		"ghcr.io/acme/api:1.4",
		"ghcr.io/acmeevil/api:1.4",
		"localhost:5000/tools/migrate:7",
		"[::1]:5000/app@sha256:abc",
		"quay.io/prometheus/node-exporter:v1.8.2",
	]) == {
		# Docker Hub: library/ is kept, as Harbor's proxy projects expect.
		"nginx:1.27": "harbor.example.com/dockerhub-proxy/library/nginx:1.27",
		"docker.io/library/nginx:1.26": "harbor.example.com/dockerhub-proxy/library/nginx:1.26",
		"index.docker.io/bitnami/redis:7": "harbor.example.com/dockerhub-proxy/bitnami/redis:7",
		# GHCR, and a more specific source for one organisation: its prefix is replaced.
		"ghcr.io/other/tool:2": "harbor.example.com/ghcr-proxy/other/tool:2",
		"ghcr.io/acme/api:1.4": "artifactory.example.com/acme-virtual/api:1.4",
		"ghcr.io/acmeevil/api:1.4": "harbor.example.com/ghcr-proxy/acmeevil/api:1.4",
		# Ported and IPv6 registries get a valid reference through an explicit mirror.
		"localhost:5000/tools/migrate:7": "harbor.example.com/local/tools/migrate:7",
		"[::1]:5000/app@sha256:abc": "harbor.example.com/loopback6/app@sha256:abc",
		# quay.io: no mirror and no catch-all, left alone.
	} with data.imagegate.config as {"mirrors": mirrors}
}

test_mirrors_first_then_the_catch_all if {
	config := {"mirrors": {"docker.io": "harbor.example.com/dockerhub-proxy"}, "rewriteRegistry": "mirror.example.com"}
	rewrites(["nginx:1", "quay.io/x/y:1"]) == {
		"nginx:1": "harbor.example.com/dockerhub-proxy/library/nginx:1",
		"quay.io/x/y:1": "mirror.example.com/x/y:1",
	} with data.imagegate.config as config
}

test_ties_between_aliases_go_to_the_smallest_source if {
	config := {"mirrors": {"index.docker.io": "b.example.com/hub", "docker.io": "a.example.com/hub"}}
	rewrites(["nginx:1"]) == {"nginx:1": "a.example.com/hub/library/nginx:1"} with data.imagegate.config as config
}

test_ignored_and_already_mirrored_images_stay if {
	config := {
		"mirrors": mirrors,
		"rewriteRegistry": "mirror.example.com",
		"rewriteIgnore": ["index.docker.io", "ghcr.io/acme"],
	}
	rewrites([
		"nginx:1",
		"ghcr.io/acme/api:1",
		"ghcr.io/acmeevil/api:1",
		# Already on a target's registry: what a rewrite made, or that registry's own images.
		"harbor.example.com/dockerhub-proxy/library/nginx:1",
		"harbor.example.com/internal/app:1",
		"MIRROR.example.com/x:1",
		# A look-alike of a target's registry is another registry.
		"mirror.example.com.evil.io/x:1",
	]) == {
		"ghcr.io/acmeevil/api:1": "harbor.example.com/ghcr-proxy/acmeevil/api:1",
		"mirror.example.com.evil.io/x:1": "mirror.example.com/x:1",
	} with data.imagegate.config as config
}

test_nothing_configured_rewrites_nothing if {
	rewrites(["nginx:1"]) == {} with data.imagegate.config as {}
}

test_the_rewritten_reference_is_what_rules_read if {
	ref := rewrite.result(fixtures.reference("ghcr.io/acme/api:1.4@sha256:abc")).reference
		with data.imagegate.config as {"mirrors": mirrors}
	[ref.domain, ref.path, ref.tag, ref.digest] == ["artifactory.example.com", "acme-virtual/api", "1.4", "sha256:abc"]
}
