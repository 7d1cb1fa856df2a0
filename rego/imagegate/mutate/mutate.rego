# METADATA
# description: |
#   The mutating decision (docs/policy-input.md): an ordered RFC 6902 patch against the
#   reviewed object, with one message per change. Order: images (rewrite, then pull
#   policy, in input order), then pod specs (pull secret), then volume claims (class).
package imagegate.mutate

import data.imagegate.lib.images
import data.imagegate.lib.sources
import data.imagegate.settings

# METADATA
# title: Mutating decision
# entrypoint: true
decision := {
	"patch": [change.op | some change in changes],
	"messages": [change.message | some change in changes],
}

changes := [change |
	some group in [image_changes, pod_spec_changes, claim_changes]
	some change in group
]

# Only AdmissionReviews that create or update something, outside excluded namespaces.
active if {
	input.protocol == "admission"
	images.operation in {"CREATE", "UPDATE"}
	not settings.excluded
}

image_changes := [change |
	active
	some image in images.checked
	some kind in ["rewrite", "pull-policy"]
	change := image_change(image, kind)
]

pod_spec_changes := [change |
	active
	secret := settings.config.imagePullSecret
	_injects_secrets
	some spec in _pod_specs
	change := secret_change(spec, secret, settings.config.imagePullSecretMode)
]

claim_changes := [change |
	active
	images.operation == "CREATE"
	input.kind.kind == "PersistentVolumeClaim"
	class := settings.config.defaultStorageClass
	class != null
	some claim in _volume_claims
	claim.hasStorageClassName == false
	change := {
		"op": {"op": "add", "path": concat("", [claim.path, "/storageClassName"]), "value": class},
		"message": concat("", ["volume claim ", claim.path, ": storageClassName set to \"", class, "\""]),
	}
]

# METADATA
# scope: document
# description: |
#   A change to one image: the registry rewrite (rule 4) of a valid reference, or the
#   pull policy (rule 3, AlwaysPullImages, templates included). `add` sets the member
#   whether or not it exists.
image_change(image, "rewrite") := {
	"op": {"op": "replace", "path": concat("", [image.path, "/image"]), "value": rewritten},
	"message": concat("", [images.describe(image), "rewritten to \"", rewritten, "\""]),
} if {
	registry := settings.config.rewriteRegistry
	registry != null
	images.valid(image)
	sources.rewrite_applies(image.reference, registry, settings.config.rewriteIgnore)
	rewritten := sources.rewrite(image.reference, registry, settings.config.rewriteMode)
}

image_change(image, "pull-policy") := {
	"op": {"op": "add", "path": concat("", [image.path, "/imagePullPolicy"]), "value": policy},
	"message": concat("", [
		images.describe(image), "imagePullPolicy set to \"", policy, "\" (was ",
		_was(images.text(image, "pullPolicy")), ")",
	]),
} if {
	policy := settings.config.pullPolicy
	policy != null
	images.text(image, "pullPolicy") != policy
}

# METADATA
# scope: document
# description: |
#   The pull secret (rule 5) for one pod spec. replace: the list becomes exactly
#   [{"name": secret}]; append: the entry is added once, the list created if missing.
secret_change(spec, secret, "replace") := {
	"op": {"op": "add", "path": concat("", [spec.path, "/imagePullSecrets"]), "value": [{"name": secret}]},
	"message": concat("", ["pod spec ", spec.path, ": imagePullSecrets set to [\"", secret, "\"]"]),
} if {
	_secrets(spec) != [{"name": secret}]
}

secret_change(spec, secret, "append") := {
	"op": {"op": "add", "path": concat("", [spec.path, "/imagePullSecrets"]), "value": [{"name": secret}]},
	"message": concat("", ["pod spec ", spec.path, ": imagePullSecrets set to [\"", secret, "\"]"]),
} if {
	not is_array(_secrets(spec))
}

secret_change(spec, secret, "append") := {
	"op": {"op": "add", "path": concat("", [spec.path, "/imagePullSecrets/-"]), "value": {"name": secret}},
	"message": concat("", ["pod spec ", spec.path, ": imagePullSecret \"", secret, "\" appended"]),
} if {
	existing := _secrets(spec)
	is_array(existing)
	not _has_secret(existing, secret)
}

# A Pod's imagePullSecrets cannot change after creation; templates can, on UPDATE too.
_injects_secrets if {
	images.workload
	not images.pod
}

_injects_secrets if {
	images.pod
	images.operation == "CREATE"
}

# The pod spec's list of secrets, or null when it has none.
_secrets(spec) := spec.imagePullSecrets if {
	spec.hasImagePullSecrets == true
	is_array(spec.imagePullSecrets)
} else := null

_has_secret(existing, secret) if {
	some entry in existing
	entry.name == secret
}

default _pod_specs := []

_pod_specs := input.podSpecs if is_array(input.podSpecs)

default _volume_claims := []

_volume_claims := input.volumeClaims if is_array(input.volumeClaims)

_was("") := "unset"

_was(policy) := concat("", ["\"", policy, "\""]) if policy != ""
