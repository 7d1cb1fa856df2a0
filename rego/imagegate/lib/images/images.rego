# METADATA
# description: |
#   Which images of the input the rules look at, and how messages name them.
#   Shared by imagegate.validate and imagegate.mutate so both see the same images.
package imagegate.lib.images

# Kinds whose pod specs carry images (docs/policy-input.md); nothing else gets image rules.
workload_kinds := {
	"Pod",
	"Deployment",
	"ReplicaSet",
	"StatefulSet",
	"DaemonSet",
	"Job",
	"CronJob",
	"ReplicationController",
}

default imagereview := false

imagereview if input.protocol == "imagereview"

default pod := false

pod if input.kind.kind == "Pod"

default workload := false

workload if input.kind.kind in workload_kinds

default operation := ""

operation := input.operation if is_string(input.operation)

# METADATA
# description: |
#   The images the rules apply to, in input order. An ImageReview is reviewed whatever
#   its kind says; an AdmissionReview only for workload kinds and never on DELETE or
#   CONNECT. On UPDATE only new images count, so an old image never blocks an update
#   (finalizer removal, scaling, status).
checked := [image |
	_reviewed
	some image in _input_images
	_considered(image)
]

default _input_images := []

_input_images := input.images if is_array(input.images)

_reviewed if imagereview

_reviewed if {
	not imagereview
	workload
	not operation in {"DELETE", "CONNECT"}
}

_considered(_) if operation != "UPDATE"

_considered(image) if is_new(image)

# METADATA
# description: The image is new to its pod spec; only an explicit false says otherwise.
is_new(image) if not image.new == false

# METADATA
# description: |
#   The reference parsed and has every field the rules read. A malformed reference object
#   counts as invalid, so it is denied rather than skipped.
valid(image) if {
	reference := image.reference
	reference.valid == true
	is_string(reference.domain)
	is_string(reference.path)
	is_string(reference.tag)
	is_string(reference.digest)
}

# METADATA
# description: |
#   How a message names the image: exactly as written, with container (or image volume)
#   and list for admission reviews; an ImageReview names no containers.
describe(image) := concat("", ["image \"", text(image, "raw"), "\": "]) if {
	text(image, "container") == ""
} else := concat("", [
	_holder(image), " \"", text(image, "container"), "\" (",
	text(image, "list"), "[", _index(image), "]) image \"",
	text(image, "raw"), "\": ",
])

_holder(image) := "volume" if text(image, "list") == "volumes"

else := "container"

# METADATA
# description: |
#   The object's pod template belongs to a controller (an ownerReference with
#   `controller: true`): a ReplicaSet of a Deployment, a Job of a CronJob. The controller
#   compares or owns that template, so it is never mutated; its pods are, when created.
controlled if {
	not pod
	is_object(input.controller)
}

_index(image) := format_int(image.index, 10) if {
	is_number(image.index)
} else := "?"

# METADATA
# description: A string field of an object, "" when absent or not a string.
text(obj, key) := value if {
	value := obj[key]
	is_string(value)
} else := ""
