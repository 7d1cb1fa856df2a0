# pinDigests: `repo:tag` becomes `repo:tag@sha256:…` from the facts the gateway
# gathered, in every image list, controller-safe, and never without a digest.
package imagegate.mutate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.mutate

index_digest := "sha256:9b1f0e4c2d7a8b3e6f5a4c1d0e9b8a7f6c5d4e3b2a1f0e9d8c7b6a5f4e3d2c1b"

# The facts the gateway puts on input.images[i] after resolving the tag.
resolved(c) := object.union(c, {"facts": {"digest": index_digest}})

pin_pods := {"pinDigests": "pods", "pullPolicy": null}

test_a_pod_tag_is_pinned_and_keeps_its_tag if {
	review := fixtures.pod([resolved(fixtures.container("web", "registry.example.com/app:1.4"))])
	d := mutate.decision with input as review with data.imagegate.config as pin_pods
	d.patch == [{
		"op": "replace", "path": "/spec/containers/0/image",
		"value": concat("", ["registry.example.com/app:1.4@", index_digest]),
	}]
	d.messages == [concat("", [
		`container "web" (containers[0]) image "registry.example.com/app:1.4": pinned to "registry.example.com/app:1.4@`,
		index_digest, `"`,
	])]
	patched(review, d).spec.containers[0].image == concat("", ["registry.example.com/app:1.4@", index_digest])
}

test_a_rewritten_image_is_pinned_on_its_new_registry if {
	review := fixtures.pod([resolved(fixtures.container("web", "nginx:1.27"))])
	d := mutate.decision with input as review
		with data.imagegate.config as object.union(pin_pods, {"mirrors": {"docker.io": "harbor.example.com/hub"}})
	d.patch[0].value == concat("", ["harbor.example.com/hub/library/nginx:1.27@", index_digest])
}

test_nothing_is_pinned_without_a_well_formed_digest if {
	every facts in [{}, {"error": "registry registry.example.com unreachable: ECONNREFUSED"}, {"digest": "sha256:abc"}] {
		c := object.union(fixtures.container("web", "registry.example.com/app:1.4"), {"facts": facts})
		d := mutate.decision with input as fixtures.pod([c]) with data.imagegate.config as pin_pods
		d.patch == []
	}
}

test_an_image_with_a_digest_is_left_as_it_is if {
	image := concat("", ["registry.example.com/app:1.4@", index_digest])
	d := mutate.decision with input as fixtures.pod([resolved(fixtures.container("web", image))])
		with data.imagegate.config as pin_pods
	d.patch == []
}

test_every_image_list_is_pinned if {
	review := fixtures.pod([
		resolved(fixtures.container("web", "registry.example.com/app:1")),
		resolved(object.union(fixtures.container("setup", "registry.example.com/init:1"), {"list": "initContainers"})),
		resolved(fixtures.image_volume("models", "registry.example.com/models:7")),
	])
	d := mutate.decision with input as review with data.imagegate.config as pin_pods
	[op.path | some op in d.patch] == [
		"/spec/containers/0/image",
		"/spec/initContainers/0/image",
		"/spec/volumes/0/image/reference",
	]
}

test_an_ephemeral_container_is_pinned_through_its_subresource if {
	review := fixtures.build({
		"kind": "Pod", "operation": "UPDATE", "subResource": "ephemeralcontainers",
		"containers": [
			object.union(fixtures.container("web", "registry.example.com/app:1"), {"new": false}),
			resolved(object.union(fixtures.container("debug", "registry.example.com/debug:2"), {"list": "ephemeralContainers"})),
		],
	})
	d := mutate.decision with input as review with data.imagegate.config as pin_pods
	d.patch == [{
		"op": "replace", "path": "/spec/ephemeralContainers/0/image",
		"value": concat("", ["registry.example.com/debug:2@", index_digest]),
	}]
}

test_templates_are_pinned_only_in_all_mode_and_never_a_controllers if {
	web := resolved(fixtures.container("web", "registry.example.com/app:1"))
	deployment := fixtures.admission("Deployment", "CREATE", [web])
	pods := mutate.decision with input as deployment with data.imagegate.config as pin_pods
	pods.patch == []
	all_mode := mutate.decision with input as deployment
		with data.imagegate.config as object.union(pin_pods, {"pinDigests": "all"})
	[op.path | some op in all_mode.patch] == ["/spec/template/spec/containers/0/image"]

	replica_set := fixtures.build({
		"kind": "ReplicaSet", "operation": "CREATE",
		"containers": [resolved(fixtures.container("web", "registry.example.com/app:1"))],
		"controller": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
	})
	owned := mutate.decision with input as replica_set
		with data.imagegate.config as object.union(pin_pods, {"pinDigests": "all"})
	owned.patch == []
}

test_pinning_off_ignores_facts if {
	d := mutate.decision with input as fixtures.pod([resolved(fixtures.container("web", "registry.example.com/app:1"))])
		with data.imagegate.config.pullPolicy as null
	d.patch == []
}

test_a_digest_must_be_sha256_or_sha512_in_lower_case_hex if {
	every digest in [
		"sha256:ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890",
		"sha256:abc",
		"md5:0123456789abcdef0123456789abcdef",
		"sha256:9b1f0e4c2d7a8b3e6f5a4c1d0e9b8a7f6c5d4e3b2a1f0e9d8c7b6a5f4e3d2c1b:x",
		"sha256:9b1f0e4c2d7a8b3e6f5a4c1d0e9b8a7f6c5d4e3b2a1f0e9d8c7b6a5f4e3d2c1g",
	] {
		c := object.union(fixtures.container("web", "registry.example.com/app:1"), {"facts": {"digest": digest}})
		d := mutate.decision with input as fixtures.pod([c]) with data.imagegate.config as pin_pods
		d.patch == []
	}
	sha512 := concat("", ["sha512:", concat("", [s | some _ in numbers.range(1, 8); s := "0123456789abcdef"])])
	c := object.union(fixtures.container("web", "registry.example.com/app:1"), {"facts": {"digest": sha512}})
	d := mutate.decision with input as fixtures.pod([c]) with data.imagegate.config as pin_pods
	d.patch[0].value == concat("", ["registry.example.com/app:1@", sha512])
}
