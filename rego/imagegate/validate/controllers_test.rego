# METADATA
# description: |
#   Every image a kubelet pulls is judged (image volumes too), and a template its
#   controller owns is judged as its pods will be.
package imagegate.validate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.validate

volume(name, image) := object.union(fixtures.image_volume(name, image), {"pullPolicy": "Always"})

test_an_untrusted_image_volume_is_denied if {
	d := validate.decision with input as fixtures.pod([
		good("web", "registry.example.com/web:1"),
		volume("payload", "quay.io/evil/miner:1"),
	])
	not d.allowed
	d.reasons == [concat("", [
		`volume "payload" (volumes[0]) image "quay.io/evil/miner:1": registry quay.io/evil/miner `,
		"is not trusted (trusted: registry.example.com, ghcr.io/acme, localhost:5000)",
	])]
}

test_image_volumes_follow_every_rule if {
	bad := object.union(volume("bad", "Bad Image"), {"reference": fixtures.invalid("invalid reference format")})
	d := validate.decision with input as fixtures.pod([
		good("web", "registry.example.com/web:1"),
		object.union(fixtures.image_volume("payload", "quay.io/evil/miner:latest"), {"pullPolicy": "IfNotPresent"}),
		bad,
	])
	[[v.container, v.rule, v.path] | some v in d.violations] == [
		["payload", "trusted-registry", "/spec/volumes/0"],
		["payload", "latest-tag", "/spec/volumes/0"],
		["payload", "pull-policy", "/spec/volumes/0"],
		["bad", "invalid-reference", "/spec/volumes/1"],
	]
}

test_image_volumes_in_templates_are_checked if {
	some kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"]
	d := validate.decision with input as fixtures.admission(kind, "CREATE", [volume("payload", "quay.io/evil/miner:1")])
	rules_of(d) == ["trusted-registry"]
}

test_an_old_image_volume_never_blocks_an_update if {
	old := object.union(volume("payload", "quay.io/evil/miner:1"), {"new": false})
	validate.decision.allowed with input as fixtures.admission("Deployment", "UPDATE", [old])
}

# A Deployment created before imagegate, with an image the rewrite sends to a trusted
# mirror: its ReplicaSet is not mutated (its controller owns the template), yet its pods
# will pull from the mirror, so the ReplicaSet is judged on the mirror.
test_a_controlled_template_is_judged_after_the_rewrite if {
	review := fixtures.build({
		"kind": "ReplicaSet", "operation": "CREATE",
		"containers": [fixtures.container("web", "nginx:1.25")],
		"controller": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
	})
	validate.decision.allowed with input as review
		with data.imagegate.config.trustedRegistries as ["mirror.example.com"]
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
	d := validate.decision with input as review
		with data.imagegate.config.trustedRegistries as ["mirror.example.com/docker.io"]
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
		with data.imagegate.config.rewriteMode as "prepend"
	d.allowed
}

# The same image in a template nobody controls was already rewritten by the mutating
# webhook if it was going to be; as it stands, it is what gets pulled.
test_an_uncontrolled_template_is_judged_as_it_stands if {
	review := fixtures.admission("ReplicaSet", "CREATE", [good("web", "nginx:1.25")])
	d := validate.decision with input as review
		with data.imagegate.config.trustedRegistries as ["mirror.example.com"]
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
	rules_of(d) == ["trusted-registry"]
}

test_a_controlled_template_skipped_by_the_rewrite_is_judged_as_it_stands if {
	review := fixtures.build({
		"kind": "ReplicaSet", "operation": "CREATE",
		"containers": [fixtures.container("web", "quay.io/acme/web:1")],
		"controller": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
	})
	d := validate.decision with input as review
		with data.imagegate.config.trustedRegistries as ["mirror.example.com"]
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
		with data.imagegate.config.rewriteIgnore as ["quay.io"]
	d.reasons == [concat("", [
		`container "web" (containers[0]) image "quay.io/acme/web:1": `,
		"registry quay.io/acme/web is not trusted (trusted: mirror.example.com)",
	])]
}

# The mutating side cannot set a new container's pull policy on a Pod UPDATE (the API
# server would refuse the whole update), so the validating side says why it is refused.
test_a_pod_update_with_a_new_image_must_already_pull_always if {
	old := object.union(good("web", "registry.example.com/web:1"), {"new": false})
	new := object.union(fixtures.container("web", "registry.example.com/web:2"), {"pullPolicy": "IfNotPresent"})
	d := validate.decision with input as fixtures.admission("Pod", "UPDATE", [new])
	d.reasons == [concat("", [
		`container "web" (containers[0]) image "registry.example.com/web:2": `,
		`imagePullPolicy is "IfNotPresent", must be "Always"`,
	])]
	validate.decision.allowed with input as fixtures.admission("Pod", "UPDATE", [old])
}
