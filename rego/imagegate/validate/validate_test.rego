package imagegate.validate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.validate

digest := "sha256:4f7a9d3e1b8c2a6f0e5d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f"

# A container that breaks no rule unless its image does.
good(name, image) := object.union(fixtures.container(name, image), {"pullPolicy": "Always"})

rules_of(decision) := [violation.rule | some violation in decision.violations]

untrusted_images := [
	"registry.example.com.evil.io/x:1",
	"registry.example.comx/x:1",
	"evil.io/registry.example.com/x:1",
	"registry.example.com:5000/x:1",
	"ghcr.io/acmeevil/x:1",
	"ghcr.io/acme-corp/x:1",
	"ghcr.io/x:1",
	"evil.io/ghcr.io/acme/x:1",
	"localhost:5001/x:1",
	"localhost/x:1",
	"nginx:1.25",
	"docker.io/registry.example.com/x:1",
]

trusted_images := [
	"registry.example.com/x:1",
	"REGISTRY.EXAMPLE.COM/x:1",
	"Registry.Example.Com/team/x:1",
	"registry.example.com/deep/path/x:1",
	"ghcr.io/acme/x:1",
	"ghcr.io/acme/team/x:1",
	"GHCR.IO/acme/x:1",
	"localhost:5000/x:1",
]

test_untrusted_registries_are_denied if {
	every raw in untrusted_images {
		d := validate.decision with input as fixtures.pod([good("app", raw)])
		rules_of(d) == ["trusted-registry"]
		not d.allowed
	}
}

test_trusted_registries_are_allowed if {
	every raw in trusted_images {
		d := validate.decision with input as fixtures.pod([good("app", raw)])
		d.allowed
		d.violations == []
	}
}

test_sources_are_compared_case_insensitively_with_hub_aliases if {
	d := validate.decision with input as fixtures.pod([good("app", "registry.example.com/x:1"), good("db", "postgres:16")])
		with data.imagegate.config.trustedRegistries as ["REGISTRY.EXAMPLE.COM/", "index.docker.io/library"]
	d.allowed
}

test_no_trusted_registries_trust_nothing if {
	d := validate.decision with input as fixtures.pod([good("app", "registry.example.com/x:1")])
		with data.imagegate.config.trustedRegistries as []
	d.violations[0].message == concat("", [
		`container "app" (containers[0]) image "registry.example.com/x:1": `,
		"registry registry.example.com/x is not trusted (trusted: none configured)",
	])
}

test_message_names_the_image_exactly_as_written if {
	d := validate.decision with input as fixtures.pod([good("web", "nginx")])
		with data.imagegate.config.trustedRegistries as ["registry.example.com", "ghcr.io/acme"]
	d.violations[0] == {
		"rule": "trusted-registry",
		"image": "nginx",
		"container": "web",
		"path": "/spec/containers/0",
		"message": concat("", [
			`container "web" (containers[0]) image "nginx": registry docker.io/library/nginx is not trusted `,
			"(trusted: registry.example.com, ghcr.io/acme)",
		]),
	}
}

test_latest_tag_is_denied if {
	d := validate.decision with input as fixtures.pod([good("app", "registry.example.com/x:latest")])
	rules_of(d) == ["latest-tag"]
	d.reasons == [`container "app" (containers[0]) image "registry.example.com/x:latest": tag "latest" is not allowed; pin a version tag or a digest`] # regal ignore:line-length
}

test_missing_tag_is_implicit_latest if {
	d := validate.decision with input as fixtures.pod([good("app", "registry.example.com/x")])
	rules_of(d) == ["latest-tag"]
	d.reasons == [`container "app" (containers[0]) image "registry.example.com/x": no tag or digest (implicit "latest"); pin a version tag or a digest`] # regal ignore:line-length
}

test_a_port_is_not_a_tag if {
	d := validate.decision with input as fixtures.pod([good("app", "localhost:5000/x")])
	rules_of(d) == ["latest-tag"]
}

test_digests_pin_the_image if {
	every raw in [
		concat("", ["registry.example.com/x@", digest]),
		concat("", ["registry.example.com/x:latest@", digest]),
		concat("", ["localhost:5000/x@", digest]),
	] {
		d := validate.decision with input as fixtures.pod([good("app", raw)])
		d.allowed
		d.violations == []
	}
}

test_latest_allowed_when_not_denied if {
	containers := [good("a", "registry.example.com/x:latest"), good("b", "ghcr.io/acme/y")]
	d := validate.decision with input as fixtures.pod(containers)
		with data.imagegate.config.denyLatest as false
	d.allowed
}

test_invalid_reference_is_always_a_violation if {
	reference := fixtures.invalid("repository name must be lowercase")
	bad := object.union(good("app", "registry.example.com/X:1"), {"reference": reference})
	d := validate.decision with input as fixtures.pod([bad])
		with data.imagegate.config as {"trustedRegistries": ["registry.example.com"], "denyLatest": false}
	rules_of(d) == ["invalid-reference"]
	d.reasons == [`container "app" (containers[0]) image "registry.example.com/X:1": invalid image reference: repository name must be lowercase`] # regal ignore:line-length
}

test_malformed_reference_object_is_invalid if {
	reference := {"valid": true, "domain": "registry.example.com"}
	broken := object.union(good("app", "registry.example.com/x:1"), {"reference": reference})
	d := validate.decision with input as fixtures.pod([broken])
	rules_of(d) == ["invalid-reference"]
	endswith(d.reasons[0], "invalid image reference: unparseable reference")
}

test_every_rule_reports_once_per_image_in_order if {
	d := validate.decision with input as fixtures.pod([
		fixtures.container("a", "nginx"),
		object.union(good("b", "ghcr.io/acme/b:1"), {"list": "initContainers"}),
		object.union(fixtures.container("c", "bad image"), {"reference": fixtures.invalid("invalid reference format")}),
	])
	[[v.rule, v.path] | some v in d.violations] == [
		["trusted-registry", "/spec/containers/0"],
		["latest-tag", "/spec/containers/0"],
		["pull-policy", "/spec/containers/0"],
		["invalid-reference", "/spec/containers/1"],
		["pull-policy", "/spec/containers/1"],
	]
}

test_pod_must_pull_always if {
	app := object.union(good("app", "ghcr.io/acme/x:1"), {"pullPolicy": "IfNotPresent"})
	d := validate.decision with input as fixtures.pod([app])
	rules_of(d) == ["pull-policy"]
	d.reasons == [`container "app" (containers[0]) image "ghcr.io/acme/x:1": imagePullPolicy is "IfNotPresent", must be "Always"`] # regal ignore:line-length
}

test_pod_without_pull_policy if {
	d := validate.decision with input as fixtures.pod([fixtures.container("app", "ghcr.io/acme/x:1")])
	d.reasons == [`container "app" (containers[0]) image "ghcr.io/acme/x:1": imagePullPolicy is not set, must be "Always"`] # regal ignore:line-length
}

# Installed without the mutating webhook, the validating one refuses a template that does
# not pull Always when it is applied, as it refuses an untrusted registry in one.
test_templates_nobody_controls_are_checked_for_pull_policy if {
	containers := [fixtures.container("app", "ghcr.io/acme/x:1")]
	every kind in ["Deployment", "CronJob", "Job", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"] {
		d := validate.decision with input as fixtures.admission(kind, "CREATE", containers)
		rules_of(d) == ["pull-policy"]
	}
	always := [object.union(fixtures.container("app", "ghcr.io/acme/x:1"), {"pullPolicy": "Always"})]
	validate.decision.allowed with input as fixtures.admission("Deployment", "CREATE", always)
}

# Its controller's template was judged; its pods will be, after the mutating webhook set
# their pull policy. Refusing it would stop the rollout of every Deployment from before.
test_controlled_templates_are_not_checked_for_pull_policy if {
	review := fixtures.build({
		"kind": "ReplicaSet", "operation": "CREATE",
		"containers": [fixtures.container("app", "ghcr.io/acme/x:1")],
		"controller": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
	})
	validate.decision.allowed with input as review
}

test_pull_policy_not_checked_when_not_configured if {
	d := validate.decision with input as fixtures.pod([fixtures.container("app", "ghcr.io/acme/x:1")])
		with data.imagegate.config.pullPolicy as null
	d.allowed
}

test_pull_policy_follows_the_configured_value if {
	d := validate.decision with input as fixtures.pod([good("app", "ghcr.io/acme/x:1")])
		with data.imagegate.config.pullPolicy as "IfNotPresent"
	rules_of(d) == ["pull-policy"]
}
