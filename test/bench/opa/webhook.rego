# METADATA
# description: |
#   The OPA-server side of the benchmark (docs/BENCHMARKS.md): the raw review in, the
#   review response out, through imagegate's own packages (data.imagegate.validate and
#   data.imagegate.mutate, unchanged). OPA has no src/review/policy-input.ts, so this package does
#   that translation in Rego, per request: walk the pod specs and container lists, parse
#   each image reference with string built-ins and RE2 patterns, filter annotations. Served
#   as OPA's webhook pattern: `POST /v0/data/bench/webhook/<endpoint>`, the body being the
#   input document and the answer the bare value (no {"input": ...}, no {"result": ...}).
#
#   The reference parser keeps imagegate's grammar for valid references (the benchmark
#   checks that both answer the same bytes' worth of JSON) but gives one generic error for
#   an invalid one, and skips IPv6 hosts, the 64-hex image-ID check and digest lengths.
package bench.webhook

import data.imagegate.mutate as mutate_policy
import data.imagegate.validate as validate_policy

# `with input as` is what lets OPA reuse packages written against imagegate's policy input;
# regal flags it as slow, and `opa bench` in docs/BENCHMARKS.md shows what it costs here.

# The validating webhook's AdmissionReview answer.
validate := {
	"apiVersion": input.apiVersion,
	"kind": "AdmissionReview",
	"response": object.union_n([
		{"uid": input.request.uid, "allowed": decision.allowed},
		_status(decision),
		_nonempty("warnings", decision.warnings),
		_nonempty("auditAnnotations", decision.auditAnnotations),
	]),
} if {
	decision := validate_policy.decision with input as admission_input
}

# The mutating webhook's AdmissionReview answer: a base64 JSONPatch, or none.
mutate := {
	"apiVersion": input.apiVersion,
	"kind": "AdmissionReview",
	"response": object.union({"uid": input.request.uid, "allowed": true}, _patch(decision.patch)),
} if {
	decision := mutate_policy.decision with input as admission_input
}

# The ImagePolicyWebhook's ImageReview answer.
imagereview := {
	"apiVersion": "imagepolicy.k8s.io/v1alpha1",
	"kind": "ImageReview",
	"status": object.union_n([
		{"allowed": decision.allowed},
		_reason(decision),
		_nonempty("auditAnnotations", decision.auditAnnotations),
	]),
} if {
	decision := validate_policy.decision with input as image_review_input
}

_status(decision) := {} if {
	decision.allowed
} else := {"status": {"code": 403, "reason": "Forbidden", "message": concat("; ", decision.reasons)}}

_reason(decision) := {} if {
	decision.allowed
} else := {"reason": concat("; ", decision.reasons)}

_nonempty(key, value) := {key: value} if count(value) > 0

else := {}

_patch(patch) := {} if {
	count(patch) == 0
} else := {"patchType": "JSONPatch", "patch": base64.encode(json.marshal(patch))}

# --- AdmissionReview → policy input (src/review/policy-input.ts admissionInput) ---

_request := input.request

# Kind → (groups, pod spec pointers), as src/workloads.ts.
_template := ["/spec/template/spec"]

_covered := {
	"Pod": [{""}, ["/spec"]],
	"Deployment": [{"apps", "extensions"}, _template],
	"ReplicaSet": [{"apps", "extensions"}, _template],
	"StatefulSet": [{"apps"}, _template],
	"DaemonSet": [{"apps", "extensions"}, _template],
	"Job": [{"batch"}, _template],
	"CronJob": [{"batch"}, ["/spec/jobTemplate/spec/template/spec"]],
	"ReplicationController": [{""}, _template],
}

default _pointers := []

_pointers := entry[1] if {
	entry := _covered[_request.kind.kind]
	_request.kind.group in entry[0]
}

_lists := ["containers", "initContainers", "ephemeralContainers"]

admission_input := {
	"protocol": "admission",
	"apiVersion": input.apiVersion,
	"uid": _request.uid,
	"operation": _request.operation,
	"namespace": _text(_request, "namespace"),
	"name": _name,
	"kind": _request.kind,
	"resource": _request.resource,
	"subResource": _text(_request, "subResource"),
	"dryRun": _true(object.get(_request, "dryRun", false)),
	"images": _images,
	"podSpecs": _pod_specs,
	"volumeClaims": _volume_claims,
	"annotations": _admission_annotations,
	"review": _request,
}

_name := _request.name if {
	_text(_request, "name") != ""
} else := _text(object.get(_request, ["object", "metadata"], {}), "name")

_spec_at(obj, pointer) := spec if {
	is_object(obj)
	spec := object.get(obj, split(substring(pointer, 1, -1), "/"), null)
	is_object(spec)
}

_images := [image |
	some pointer in _pointers
	spec := _spec_at(_request.object, pointer)
	old := _old_images(pointer)
	some list in _lists
	some index, container in _array(spec, list)
	raw := _text(container, "image")
	image := {
		"container": _text(container, "name"),
		"list": list,
		"index": index,
		"path": concat("/", [pointer, list, format_int(index, 10)]),
		"podSpecPath": pointer,
		"raw": raw,
		"new": _new(raw, old),
		"pullPolicy": _text(container, "imagePullPolicy"),
		"reference": reference(object.get(container, "image", null)),
	}
]

_old_images(pointer) := {container.image |
	_request.operation == "UPDATE"
	spec := _spec_at(_request.oldObject, pointer)
	some list in _lists
	some container in _array(spec, list)
	is_string(container.image)
}

_pod_specs := [{
	"path": pointer,
	"imagePullSecrets": _array(spec, "imagePullSecrets"),
	"hasImagePullSecrets": is_array(object.get(spec, "imagePullSecrets", null)),
} |
	some pointer in _pointers
	spec := _spec_at(_request.object, pointer)
]

default _volume_claims := []

_volume_claims := [{
	"path": "/spec",
	"storageClassName": _text(spec, "storageClassName"),
	"hasStorageClassName": is_string(object.get(spec, "storageClassName", null)),
}] if {
	_request.kind.kind == "PersistentVolumeClaim"
	_request.kind.group == ""
	spec := _spec_at(_request.object, "/spec")
}

# The object's annotations, then each pod template's, the template winning.
_admission_annotations := object.union_n(array.concat(
	[_policy_annotations(object.get(_request, ["object", "metadata", "annotations"], {}))],
	[_policy_annotations(object.get(_request.object, split(substring(metadata, 1, -1), "/"), {})) |
		some pointer in _pointers
		pointer != "/spec"
		metadata := concat("", [trim_suffix(pointer, "/spec"), "/metadata/annotations"])
	],
))

# --- ImageReview → policy input (src/review/policy-input.ts imageReviewInput) ---

image_review_input := {
	"protocol": "imagereview",
	"apiVersion": input.apiVersion,
	"uid": "",
	"operation": "",
	"namespace": _text(input.spec, "namespace"),
	"name": "",
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"subResource": "",
	"dryRun": false,
	"images": [{
		"container": "",
		"list": "containers",
		"index": index,
		"path": concat("", ["/spec/containers/", format_int(index, 10)]),
		"podSpecPath": "/spec",
		"raw": _text(container, "image"),
		"new": true,
		"pullPolicy": "",
		"reference": reference(_text(container, "image")),
	} |
		some index, container in _array(input.spec, "containers")
	],
	"podSpecs": [],
	"volumeClaims": [],
	"annotations": _policy_annotations(object.get(input.spec, "annotations", {})),
	"review": input.spec,
}

# --- helpers ---

_new(raw, old) := false if {
	raw in old
} else := true

_true(value) if {
	value == true
} else := false

_policy_annotations(annotations) := {key: value |
	is_object(annotations)
	some key, value in annotations
	is_string(value)
	contains(key, ".image-policy.k8s.io/")
}

_text(obj, key) := value if {
	value := obj[key]
	is_string(value)
} else := ""

_array(obj, key) := value if {
	value := obj[key]
	is_array(value)
} else := []

# --- image references (src/review/image-reference.ts, essentials) ---

_component := `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`

_label := `[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?`

_path_pattern := concat("", ["^", _component, "(?:/", _component, ")*$"])

_host_pattern := concat("", ["^", _label, `(?:\.`, _label, ")*(?::[0-9]+)?$"])

_tag_pattern := `^\w[\w.-]{0,127}$`

_digest_pattern := `^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$`

_invalid := {
	"valid": false, "error": "invalid image reference",
	"domain": "", "path": "", "name": "", "tag": "", "digest": "", "normalized": "", "familiar": "",
}

# METADATA
# description: The parsed reference, as src/review/image-reference.ts toPolicyReference shapes it.
reference(raw) := ref if {
	is_string(raw)
	raw != ""
	count(raw) <= 2048
	not contains(raw, "://")
	[rest, digest, has_digest] := _cut(raw, "@")
	[written, tag, has_tag] := _cut_tag(rest)
	[domain, remote] := _split_domain(written)
	path := _official(domain, remote)
	name := concat("/", [domain, path])
	count(name) <= 255
	regex.match(_path_pattern, remote)
	_tag_ok(tag, has_tag)
	_digest_ok(digest, has_digest)
	ref := {
		"valid": true, "error": "",
		"domain": domain, "path": path, "name": name, "tag": tag, "digest": digest,
		"normalized": _compose(name, tag, digest),
		"familiar": _compose(_familiar(domain, path), tag, digest),
	}
} else := _invalid

_cut(s, sep) := [substring(s, 0, i), substring(s, i + 1, -1), true] if {
	i := indexof(s, sep)
	i >= 0
} else := [s, "", false]

# The tag follows a ":" after the last "/", so a registry port is never taken for one.
_cut_tag(rest) := [substring(rest, 0, (count(rest) - count(last)) + i), substring(last, i + 1, -1), true] if {
	parts := split(rest, "/")
	last := parts[count(parts) - 1]
	i := indexof(last, ":")
	i >= 0
} else := [rest, "", false]

_split_domain(written) := [_fold(lower(first)), substring(written, count(first) + 1, -1)] if {
	first := split(written, "/")[0]
	first != written
	_host_like(first)
	regex.match(_host_pattern, first)
} else := ["docker.io", written] if {
	written != ""
	first := split(written, "/")[0]
	not _host_like(first)
}

_host_like(first) if contains(first, ".")

_host_like(first) if contains(first, ":")

_host_like(first) if lower(first) == "localhost"

_fold("index.docker.io") := "docker.io"

_fold(host) := host if host != "index.docker.io"

_official("docker.io", remote) := concat("", ["library/", remote]) if not contains(remote, "/")

_official(domain, remote) := remote if domain != "docker.io"

_official("docker.io", remote) := remote if contains(remote, "/")

_tag_ok(_, false)

_tag_ok(tag, true) if regex.match(_tag_pattern, tag)

_digest_ok(_, false)

_digest_ok(digest, true) if regex.match(_digest_pattern, digest)

_compose(name, tag, digest) := concat("", [name, _prefixed(":", tag), _prefixed("@", digest)])

_prefixed(_, "") := ""

_prefixed(mark, value) := concat("", [mark, value]) if value != ""

_familiar(domain, path) := concat("/", [domain, path]) if {
	domain != "docker.io"
} else := trim_prefix(path, "library/") if {
	not contains(trim_prefix(path, "library/"), "/")
} else := path
