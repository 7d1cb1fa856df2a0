# METADATA
# description: |
#   The mutating decision (docs/policy-input.md): an ordered RFC 6902 patch against the
#   reviewed object, with one message per change. Order: images (the image string:
#   rewrite and digest pin; then pull policy, in input order), then pod specs (pull secret), then volume claims (class).
#
#   Living among controllers (SPEC): an object whose pod template a controller owns is
#   never patched, and an UPDATE is patched only where the API server lets that field
#   change, so no patch ever turns an acceptable request into a refused one.
package imagegate.mutate

import data.imagegate.lib.exemptions
import data.imagegate.lib.images
import data.imagegate.lib.pinning
import data.imagegate.lib.rewrite
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

# Only AdmissionReviews that create or update something, outside excluded namespaces, and
# never an object whose template its controller owns (a ReplicaSet of a Deployment, a Job
# of a CronJob): the Deployment controller finds its ReplicaSet by comparing templates and
# would create a new one for ever; the owner's template was mutated, and the pods will be.
active if {
	input.protocol == "admission"
	images.operation in {"CREATE", "UPDATE"}
	not settings.excluded
	not images.controlled
}

image_changes := [change |
	active
	some image in images.checked
	not exemptions.exempt(image)
	some kind in ["image", "pull-policy"]
	may_patch(image, kind)
	change := image_change(image, kind)
]

pod_spec_changes := [change |
	active
	secret := settings.config.imagePullSecret
	some spec in _pod_specs
	spec.path in _secret_spec_paths
	change := secret_change(spec, secret, settings.config.imagePullSecretMode)
]

# METADATA
# scope: document
# description: |
#   Whether the image's "image" (its string) or "pull-policy" may be patched in
#   this request without the API server refusing it. On CREATE everything may. On UPDATE
#   (only new images are checked at all): a Pod's spec is immutable but for its container
#   images; the pods/ephemeralcontainers subresource adds ephemeral containers whole; a
#   Job's template is immutable; other templates may change.
may_patch(_, _) if images.operation == "CREATE"

may_patch(image, "image") if {
	_updating_pod
	input.subResource == ""
	image.list in {"containers", "initContainers"}
}

may_patch(image, _) if {
	_updating_pod
	input.subResource == "ephemeralcontainers"
	image.list == "ephemeralContainers"
}

may_patch(_, _) if {
	images.operation == "UPDATE"
	not images.pod
	not _immutable_template
}

_updating_pod if {
	images.operation == "UPDATE"
	images.pod
}

# batch/v1 validation refuses any change to a Job's spec.template after creation.
_immutable_template if input.kind.kind == "Job"

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
#   A change to one image: its string, registry rewritten (rule 4) and pinned to the
#   digest its tag names (pinDigests: `repo:tag@sha256:…`, the tag kept for readers); or
#   its pull policy (rule 3, AlwaysPullImages, templates included). `add` sets the member
#   whether or not it exists.
image_change(image, "image") := {
	"op": {"op": "replace", "path": images.image_pointer(image), "value": changed},
	"message": concat("", [images.describe(image), _image_message(image, changed)]),
} if {
	images.valid(image)
	changed := _new_image(image)
	changed != image.raw
}

image_change(image, "pull-policy") := {
	"op": {"op": "add", "path": images.pull_policy_pointer(image), "value": policy},
	"message": concat("", [
		images.describe(image), "imagePullPolicy set to \"", policy, "\" (was ",
		_was(images.text(image, "pullPolicy")), ")",
	]),
} if {
	policy := settings.config.pullPolicy
	policy != null
	images.text(image, "pullPolicy") != policy
}

# The rewrite's image string, or the image as written; then the pin, where there is one.
_new_image(image) := concat("@", [_rewritten(image), pin]) if {
	pin := pin_digest(image)
} else := _rewritten(image)

_rewritten(image) := rewrite.result(image.reference).image if {
	rewrite.result(image.reference)
} else := image.raw

# METADATA
# description: |
#   The digest an image is pinned to: pinDigests applies, it has none, and the gateway
#   resolved its tag (the reference the rewrite sends it to: `lookups`).
pin_digest(image) := pinning.digest(image) if {
	pinning.active
	image.reference.digest == ""
}

_image_message(image, changed) := concat("", ["rewritten to \"", changed, "\""]) if {
	rewrite.result(image.reference)
} else := concat("", ["pinned to \"", changed, "\""])

# METADATA
# description: |
#   The registry facts this evaluation needs (imagegate.facts): the digest of every tag
#   pinDigests would pin, asked of the registry the image will be pulled from.
lookups := [{"index": index, "reference": reference, "verification": ""} |
	active
	some index, image in images.every_image
	images.considered(image)
	images.valid(image)
	not exemptions.exempt(image)
	pinning.active
	image.reference.digest == ""
	may_patch(image, "image")
	reference := rewrite.target(image.reference)
]

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

# On CREATE every pod spec gets the secret. On UPDATE a Pod's imagePullSecrets cannot
# change, nor a Job's template; another template gets it only along with a new image, so
# an update that changes no image (a label, the controller scaling) never rolls the
# workload out.
_secret_spec_paths contains spec.path if {
	images.workload
	images.operation == "CREATE"
	some spec in _pod_specs
}

_secret_spec_paths contains image.podSpecPath if {
	images.operation == "UPDATE"
	images.workload
	not images.pod
	not _immutable_template
	some image in images.checked
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
