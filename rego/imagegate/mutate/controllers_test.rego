# METADATA
# description: |
#   Living among controllers: what the mutating side leaves alone so that it never fights
#   a controller (a template it owns) or the API server (a field it refuses to change).
package imagegate.mutate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.mutate

# Everything that mutates is on: pull policy, a pull secret, a rewrite.
everything_on := {
	"trustedRegistries": ["mirror.example.com"],
	"pullPolicy": "Always",
	"imagePullSecret": "regcred",
	"rewriteRegistry": "mirror.example.com",
}

owned_by(kind, name) := {"apiVersion": "apps/v1", "kind": kind, "name": name}

test_a_replicaset_of_a_deployment_is_never_mutated if {
	some operation in ["CREATE", "UPDATE"]
	review := fixtures.build({
		"kind": "ReplicaSet", "operation": operation,
		"containers": [object.union(fixtures.container("web", "nginx:1.25"), {"pullPolicy": "IfNotPresent"})],
		"controller": owned_by("Deployment", "web"),
	})
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	d == {"patch": [], "messages": []}
}

test_a_job_of_a_cronjob_is_never_mutated if {
	review := fixtures.build({
		"kind": "Job", "operation": "CREATE",
		"containers": [fixtures.container("backup", "busybox:1.36")],
		"controller": {"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup"},
	})
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	d.patch == []
}

test_any_controlled_template_is_left_to_its_controller if {
	some kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicationController", "CronJob"]
	review := fixtures.build({
		"kind": kind, "operation": "CREATE",
		"containers": [fixtures.container("web", "nginx:1.25")],
		"controller": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"},
	})
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	d.patch == []
}

# The pods a controller creates are mutated like any pod: that is where its template's
# images end up.
test_a_pod_of_a_replicaset_is_mutated_on_create if {
	review := fixtures.build({
		"kind": "Pod", "operation": "CREATE",
		"containers": [fixtures.container("web", "nginx:1.25")],
		"controller": owned_by("ReplicaSet", "web-5d8f7c9b4"),
	})
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	[op.path | some op in d.patch] == [
		"/spec/containers/0/image",
		"/spec/containers/0/imagePullPolicy",
		"/spec/imagePullSecrets",
	]
	patched(review, d).spec.containers[0].image == "mirror.example.com/library/nginx:1.25"
}

# Pod validation refuses every spec change on UPDATE but container images: a new image is
# rewritten, its pull policy and the pull secrets are left as they are.
test_a_pod_update_only_rewrites_new_container_images if {
	old := object.union(fixtures.container("web", "nginx:1.25"), {"new": false, "pullPolicy": "Always"})
	new := object.union(fixtures.container("side", "envoy:1"), {"pullPolicy": "IfNotPresent"})
	init := object.union(fixtures.container("setup", "busybox:1"), {"list": "initContainers"})
	review := fixtures.admission("Pod", "UPDATE", [old, new, init])
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	d.patch == [
		{"op": "replace", "path": "/spec/containers/1/image", "value": "mirror.example.com/library/envoy:1"},
		{"op": "replace", "path": "/spec/initContainers/0/image", "value": "mirror.example.com/library/busybox:1"},
	]
}

test_ephemeral_containers_are_mutated_whole_on_their_subresource if {
	old := object.union(fixtures.container("web", "nginx:1.25"), {"new": false})
	debug := object.union(fixtures.container("debug", "busybox:1"), {"list": "ephemeralContainers"})
	review := fixtures.build({
		"kind": "Pod", "operation": "UPDATE", "subResource": "ephemeralcontainers",
		"containers": [old, debug],
	})
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	d.patch == [
		{"op": "replace", "path": "/spec/ephemeralContainers/0/image", "value": "mirror.example.com/library/busybox:1"},
		{"op": "add", "path": "/spec/ephemeralContainers/0/imagePullPolicy", "value": "Always"},
	]
}

# A Job's spec.template is immutable: an update (the garbage collector removing a
# finalizer, a label, suspend) must get no patch, or it is refused whole.
test_a_job_update_is_never_patched if {
	old := object.union(fixtures.container("backup", "busybox:1.36"), {"new": false})
	some containers in [[old], [old, fixtures.container("new", "redis:7")]]
	review := fixtures.admission("Job", "UPDATE", containers)
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	d.patch == []
}

test_a_job_is_mutated_on_create if {
	review := fixtures.admission("Job", "CREATE", [fixtures.container("backup", "busybox:1.36")])
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	[op.path | some op in d.patch] == [
		"/spec/template/spec/containers/0/image",
		"/spec/template/spec/containers/0/imagePullPolicy",
		"/spec/template/spec/imagePullSecrets",
	]
}

test_image_volumes_get_pull_policy_and_rewrite if {
	review := fixtures.pod([
		object.union(fixtures.container("web", "mirror.example.com/web:1"), {"pullPolicy": "Always"}),
		object.union(fixtures.image_volume("payload", "quay.io/acme/models:3"), {"pullPolicy": "IfNotPresent"}),
	])
	d := mutate.decision with input as review with data.imagegate.config as everything_on
	d.patch == [
		{"op": "replace", "path": "/spec/volumes/0/image/reference", "value": "mirror.example.com/acme/models:3"},
		{"op": "add", "path": "/spec/volumes/0/image/pullPolicy", "value": "Always"},
		{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]},
	]
	d.messages[1] == concat("", [
		`volume "payload" (volumes[0]) image "quay.io/acme/models:3": `,
		`imagePullPolicy set to "Always" (was "IfNotPresent")`,
	])
	patched(review, d).spec.volumes == [{
		"name": "payload",
		"image": {"reference": "mirror.example.com/acme/models:3", "pullPolicy": "Always"},
	}]
}

test_image_volumes_in_templates if {
	review := fixtures.admission("Deployment", "CREATE", [fixtures.image_volume("payload", "quay.io/acme/models:3")])
	d := mutate.decision with input as review
	d.patch == [{"op": "add", "path": "/spec/template/spec/volumes/0/image/pullPolicy", "value": "Always"}]
	volume := patched(review, d).spec.template.spec.volumes[0]
	volume.image == {"reference": "quay.io/acme/models:3", "pullPolicy": "Always"}
}
