package imagegate.mutate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.mutate

# Apply the decision's patch to the reviewed object, as the API server would.
patched(review, decision) := json.patch(review.review.object, decision.patch)

always(name, image) := object.union(fixtures.container(name, image), {"pullPolicy": "Always"})

test_nothing_to_change if {
	mutate.decision == {"patch": [], "messages": []} with input as fixtures.pod([always("web", "nginx:1.25")])
}

test_pull_policy_is_set_on_every_container_list if {
	review := fixtures.pod([
		fixtures.container("web", "nginx:1.25"),
		object.union(fixtures.container("setup", "busybox:1"), {"list": "initContainers", "pullPolicy": "IfNotPresent"}),
		always("log", "fluentbit:2"),
	])
	d := mutate.decision with input as review
	d.patch == [
		{"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": "Always"},
		{"op": "add", "path": "/spec/initContainers/0/imagePullPolicy", "value": "Always"},
	]
	d.messages == [
		`container "web" (containers[0]) image "nginx:1.25": imagePullPolicy set to "Always" (was unset)`,
		`container "setup" (initContainers[0]) image "busybox:1": imagePullPolicy set to "Always" (was "IfNotPresent")`,
	]
	result := patched(review, d)
	[c.imagePullPolicy | some c in result.spec.containers] == ["Always", "Always"]
	result.spec.initContainers[0].imagePullPolicy == "Always"
}

test_pull_policy_on_templates if {
	every kind in ["Deployment", "CronJob", "DaemonSet", "ReplicationController"] {
		review := fixtures.admission(kind, "CREATE", [fixtures.container("web", "nginx:1.25")])
		d := mutate.decision with input as review
		d.patch == [{
			"op": "add",
			"path": concat("", [fixtures.pod_spec_path(kind), "/containers/0/imagePullPolicy"]),
			"value": "Always",
		}]
		patched(review, d)
	}
}

test_pull_policy_left_alone_when_not_configured if {
	review := fixtures.pod([fixtures.container("web", "nginx:1.25")])
	mutate.decision.patch == [] with input as review with data.imagegate.config.pullPolicy as null
}

test_update_changes_only_new_images if {
	old := object.union(fixtures.container("web", "nginx:1.25"), {"new": false})
	review := fixtures.admission("Deployment", "UPDATE", [old, fixtures.container("side", "envoy:1")])
	d := mutate.decision with input as review
	d.patch == [{"op": "add", "path": "/spec/template/spec/containers/1/imagePullPolicy", "value": "Always"}]
}

test_ephemeral_container_gets_pull_policy if {
	old := object.union(always("web", "nginx:1.25"), {"new": false})
	debug := object.union(fixtures.container("debug", "busybox:1"), {"list": "ephemeralContainers"})
	review := fixtures.build({
		"kind": "Pod", "operation": "UPDATE", "subResource": "ephemeralcontainers",
		"containers": [old, debug],
	})
	d := mutate.decision with input as review
	d.patch == [{"op": "add", "path": "/spec/ephemeralContainers/0/imagePullPolicy", "value": "Always"}]
	patched(review, d).spec.ephemeralContainers[0].imagePullPolicy == "Always"
}

test_rewrite_replace if {
	review := fixtures.pod([
		always("web", "nginx:1.25"),
		always("app", "ghcr.io/acme/app:2@sha256:abc"),
		always("local", "localhost:5000/tool"),
		always("mirrored", "MIRROR.example.com/library/redis:7"),
	])
	d := mutate.decision with input as review with data.imagegate.config.rewriteRegistry as "mirror.example.com"
	d.patch == [
		{"op": "replace", "path": "/spec/containers/0/image", "value": "mirror.example.com/library/nginx:1.25"},
		{"op": "replace", "path": "/spec/containers/1/image", "value": "mirror.example.com/acme/app:2@sha256:abc"},
		{"op": "replace", "path": "/spec/containers/2/image", "value": "mirror.example.com/tool"},
	]
	d.messages[0] == concat("", [
		`container "web" (containers[0]) image "nginx:1.25": `,
		`rewritten to "mirror.example.com/library/nginx:1.25"`,
	])
	[c.image | some c in patched(review, d).spec.containers] == [
		"mirror.example.com/library/nginx:1.25",
		"mirror.example.com/acme/app:2@sha256:abc",
		"mirror.example.com/tool",
		"MIRROR.example.com/library/redis:7",
	]
}

test_rewrite_prepend if {
	review := fixtures.admission("Deployment", "CREATE", [always("web", "nginx:1.25")])
	d := mutate.decision with input as review
		with data.imagegate.config.rewriteRegistry as "cache.example.com/"
		with data.imagegate.config.rewriteMode as "prepend"
	d.patch == [{
		"op": "replace",
		"path": "/spec/template/spec/containers/0/image",
		"value": "cache.example.com/docker.io/library/nginx:1.25",
	}]
}

test_rewrite_ignores_configured_registries if {
	review := fixtures.pod([
		always("web", "nginx:1.25"),
		always("app", "ghcr.io/acme/app:2"),
		always("evil", "ghcr.io/acmeevil/app:2"),
		always("bad", "Bad Image"),
	])
	bad := object.union(review.images[3], {"reference": fixtures.invalid("invalid reference format")})
	with_bad := object.union(review, {"images": array.concat(array.slice(review.images, 0, 3), [bad])})
	d := mutate.decision with input as with_bad
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
		with data.imagegate.config.rewriteIgnore as ["index.docker.io", "ghcr.io/acme"]
	[op.path | some op in d.patch] == ["/spec/containers/2/image"]
}

test_rewrite_then_pull_policy_per_image if {
	review := fixtures.pod([fixtures.container("a", "nginx:1"), fixtures.container("b", "redis:7")])
	d := mutate.decision with input as review with data.imagegate.config.rewriteRegistry as "mirror.example.com"
	[op.path | some op in d.patch] == [
		"/spec/containers/0/image",
		"/spec/containers/0/imagePullPolicy",
		"/spec/containers/1/image",
		"/spec/containers/1/imagePullPolicy",
	]
	patched(review, d).spec.containers[1] == {
		"name": "b",
		"image": "mirror.example.com/library/redis:7",
		"imagePullPolicy": "Always",
	}
}

test_no_mutation_outside_admission_create_and_update if {
	pod := [fixtures.container("web", "nginx:1.25")]
	mutate.decision.patch == [] with input as fixtures.admission("Pod", "DELETE", pod)
	mutate.decision.patch == [] with input as fixtures.admission("Pod", "CONNECT", pod)
	mutate.decision.patch == [] with input as fixtures.image_review(["nginx:1.25"])
	mutate.decision.patch == [] with input as object.union(fixtures.pod(pod), {"namespace": "kube-system"})
	mutate.decision.patch == [] with input as object.union(fixtures.pod(pod), {"kind": {"kind": "Service"}})
	mutate.decision == {"patch": [], "messages": []} with input as {}
}

# A bundle rolled out ahead of the gateway: inputs from before image volumes carry no
# imagePath or pullPolicyPath, and the patch still lands on the container.
test_inputs_without_image_pointers_patch_the_container if {
	review := fixtures.pod([fixtures.container("web", "nginx:1.25")])
	older := object.union(review, {"images": [object.remove(image, {"imagePath", "pullPolicyPath"}) |
		some image in review.images
	]})
	d := mutate.decision with input as older with data.imagegate.config.rewriteRegistry as "mirror.example.com"
	[op.path | some op in d.patch] == ["/spec/containers/0/image", "/spec/containers/0/imagePullPolicy"]
}
