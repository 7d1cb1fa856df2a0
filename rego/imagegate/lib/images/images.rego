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
	reviewed
	some image in every_image
	considered(image)
]

# METADATA
# description: The checked images by their index in input.images.
checked_indexed[index] := image if {
	reviewed
	some index, image in every_image
	considered(image)
}

# METADATA
# description: Every image of the input, new or not.
# scope: document
default every_image := []

every_image := input.images if is_array(input.images)

# METADATA
# description: The review is one the image rules apply to at all.
# scope: document
reviewed if imagereview

reviewed if {
	not imagereview
	workload
	not operation in {"DELETE", "CONNECT"}
}

# METADATA
# description: The image is one the rules judge (all on CREATE, new ones on UPDATE).
# scope: document
considered(_) if operation != "UPDATE"

considered(image) if is_new(image)

# METADATA
# description: The image is new to its pod spec; only an explicit false says otherwise.
is_new(image) if not image.new == false

# METADATA
# description: |
#   The reference parsed and has every field the rules read. A malformed reference object
#   counts as invalid, so it is denied rather than skipped. (`normalized` names the
#   reference where the validating rules look up what it requires: without it, a signature
#   requirement would be missed.)
valid(image) if {
	reference := image.reference
	reference.valid == true
	is_string(reference.domain)
	is_string(reference.path)
	is_string(reference.tag)
	is_string(reference.digest)
	is_string(reference.normalized)
	reference.normalized != ""
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
#   JSON pointers to an image's string and to its pull policy, as the input names them
#   (containers: <path>/image, <path>/imagePullPolicy; image volumes: <path>/image/reference,
#   <path>/image/pullPolicy). A gateway older than image volumes sends neither field, only
#   containers: a bundle rolled out ahead of it still patches the right place.
image_pointer(image) := image.imagePath if {
	is_string(image.imagePath)
} else := concat("", [image.path, "/image"])

# METADATA
# description: The pointer to the image's pull policy (see image_pointer).
pull_policy_pointer(image) := image.pullPolicyPath if {
	is_string(image.pullPolicyPath)
} else := concat("", [image.path, "/imagePullPolicy"])

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
