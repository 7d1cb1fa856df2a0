package imagegate.mutate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.mutate

# A pod spec whose containers need no change, with the given imagePullSecrets.
clean(kind, operation, secrets) := fixtures.build({
	"kind": kind,
	"operation": operation,
	"containers": [always("web", "registry.example.com/web:1")],
	"secrets": secrets,
})

clean_without_secrets(kind, operation) := fixtures.admission(
	kind,
	operation,
	[always("web", "registry.example.com/web:1")],
)

test_replace_sets_the_list if {
	review := clean_without_secrets("Pod", "CREATE")
	d := mutate.decision with input as review with data.imagegate.config.imagePullSecret as "regcred"
	d == {
		"patch": [{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "regcred"}]}],
		"messages": [`pod spec /spec: imagePullSecrets set to ["regcred"]`],
	}
	patched(review, d).spec.imagePullSecrets == [{"name": "regcred"}]
}

test_replace_overwrites_other_secrets if {
	review := clean("Deployment", "CREATE", [{"name": "old"}, {"name": "regcred"}])
	d := mutate.decision with input as review with data.imagegate.config.imagePullSecret as "regcred"
	d.patch == [{"op": "add", "path": "/spec/template/spec/imagePullSecrets", "value": [{"name": "regcred"}]}]
	patched(review, d).spec.template.spec.imagePullSecrets == [{"name": "regcred"}]
}

test_replace_keeps_an_exact_list if {
	review := clean("Pod", "CREATE", [{"name": "regcred"}])
	mutate.decision.patch == [] with input as review with data.imagegate.config.imagePullSecret as "regcred"
}

test_append_creates_a_missing_list if {
	review := clean_without_secrets("CronJob", "CREATE")
	d := mutate.decision with input as review
		with data.imagegate.config.imagePullSecret as "regcred"
		with data.imagegate.config.imagePullSecretMode as "append"
	d.patch == [{
		"op": "add",
		"path": "/spec/jobTemplate/spec/template/spec/imagePullSecrets",
		"value": [{"name": "regcred"}],
	}]
	patched(review, d).spec.jobTemplate.spec.template.spec.imagePullSecrets == [{"name": "regcred"}]
}

test_append_adds_to_an_existing_list if {
	review := clean("Pod", "CREATE", [{"name": "other"}])
	d := mutate.decision with input as review
		with data.imagegate.config.imagePullSecret as "regcred"
		with data.imagegate.config.imagePullSecretMode as "append"
	d == {
		"patch": [{"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "regcred"}}],
		"messages": [`pod spec /spec: imagePullSecret "regcred" appended`],
	}
	patched(review, d).spec.imagePullSecrets == [{"name": "other"}, {"name": "regcred"}]
}

test_append_never_duplicates if {
	review := clean("Deployment", "UPDATE", [{"name": "regcred"}, {"name": "other"}])
	mutate.decision.patch == [] with input as review
		with data.imagegate.config.imagePullSecret as "regcred"
		with data.imagegate.config.imagePullSecretMode as "append"
}

test_pods_get_secrets_only_on_create if {
	review := clean_without_secrets("Pod", "UPDATE")
	mutate.decision.patch == [] with input as review with data.imagegate.config.imagePullSecret as "regcred"
}

test_templates_get_secrets_on_an_update_with_a_new_image if {
	review := clean_without_secrets("StatefulSet", "UPDATE")
	d := mutate.decision with input as review with data.imagegate.config.imagePullSecret as "regcred"
	d.patch == [{"op": "add", "path": "/spec/template/spec/imagePullSecrets", "value": [{"name": "regcred"}]}]
}

# A label, an annotation or a scale on a running workload must not roll it out.
test_templates_keep_their_secrets_on_an_update_without_new_images if {
	old := object.union(always("web", "registry.example.com/web:1"), {"new": false})
	some kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "CronJob"]
	review := fixtures.admission(kind, "UPDATE", [old])
	mutate.decision.patch == [] with input as review with data.imagegate.config.imagePullSecret as "regcred"
}

test_no_secret_without_configuration if {
	mutate.decision.patch == [] with input as clean_without_secrets("Pod", "CREATE")
}

test_order_is_images_then_pod_specs if {
	review := fixtures.admission("Job", "CREATE", [fixtures.container("a", "nginx:1"), fixtures.container("b", "redis:7")])
	d := mutate.decision with input as review with data.imagegate.config.imagePullSecret as "regcred"
	[op.path | some op in d.patch] == [
		"/spec/template/spec/containers/0/imagePullPolicy",
		"/spec/template/spec/containers/1/imagePullPolicy",
		"/spec/template/spec/imagePullSecrets",
	]
}

test_storage_class_defaulted_when_absent if {
	review := fixtures.claim("CREATE", null)
	d := mutate.decision with input as review with data.imagegate.config.defaultStorageClass as "standard"
	d == {
		"patch": [{"op": "add", "path": "/spec/storageClassName", "value": "standard"}],
		"messages": [`volume claim /spec: storageClassName set to "standard"`],
	}
	patched(review, d).spec.storageClassName == "standard"
}

test_explicit_empty_storage_class_is_kept if {
	mutate.decision.patch == [] with input as fixtures.claim("CREATE", "")
		with data.imagegate.config.defaultStorageClass as "standard"
}

test_explicit_storage_class_is_kept if {
	mutate.decision.patch == [] with input as fixtures.claim("CREATE", "fast")
		with data.imagegate.config.defaultStorageClass as "standard"
}

test_storage_class_only_on_create if {
	mutate.decision.patch == [] with input as fixtures.claim("UPDATE", null)
		with data.imagegate.config.defaultStorageClass as "standard"
}

test_storage_class_not_configured if {
	mutate.decision.patch == [] with input as fixtures.claim("CREATE", null)
}

test_storage_class_not_in_excluded_namespaces if {
	mutate.decision.patch == [] with input as object.union(fixtures.claim("CREATE", null), {"namespace": "kube-system"})
		with data.imagegate.config.defaultStorageClass as "standard"
}

test_input_without_pod_specs_or_claims if {
	review := object.remove(clean_without_secrets("Pod", "CREATE"), {"podSpecs"})
	mutate.decision.patch == [] with input as review with data.imagegate.config.imagePullSecret as "regcred"
	claim := object.remove(fixtures.claim("CREATE", null), {"volumeClaims"})
	mutate.decision.patch == [] with input as claim with data.imagegate.config.defaultStorageClass as "standard"
}
