# METADATA
# description: |
#   The effective configuration for input.namespace: data.imagegate.config with the most
#   specific `namespaces` override over it (each key it names replaced whole, maps and
#   lists included), every key normalized. A missing or malformed
#   key falls back to the safe default (enforce, deny latest, trust nothing, no mutation).
package imagegate.settings

defaults := {
	"trustedRegistries": [],
	"denyLatest": true,
	"pullPolicy": null,
	"rewriteRegistry": null,
	"rewriteMode": "replace",
	"rewriteIgnore": [],
	"mirrors": {},
	"imagePullSecret": null,
	"imagePullSecretMode": "replace",
	"defaultStorageClass": null,
	"excludeNamespaces": [],
	"enforcement": "deny",
	"breakGlass": false,
	"maxImages": 32768,
	"maxLookups": 256,
	"disallowedTags": [],
	"requireDigest": false,
	"exemptImages": [],
	"pinDigests": false,
	"signatures": [],
	"namespaces": {},
}

default namespace := ""

namespace := input.namespace if is_string(input.namespace)

# METADATA
# description: The effective, normalized configuration for the namespace.
config := {
	"trustedRegistries": _strings(_merged.trustedRegistries),
	"denyLatest": _merged.denyLatest != false,
	"pullPolicy": _one_of(_merged.pullPolicy, {"Always", "IfNotPresent", "Never"}, null),
	"rewriteRegistry": _name(_merged.rewriteRegistry),
	"rewriteMode": _one_of(_merged.rewriteMode, {"prepend"}, "replace"),
	"rewriteIgnore": _strings(_merged.rewriteIgnore),
	"mirrors": _string_map(_merged.mirrors),
	"imagePullSecret": _name(_merged.imagePullSecret),
	"imagePullSecretMode": _one_of(_merged.imagePullSecretMode, {"append"}, "replace"),
	"defaultStorageClass": _name(_merged.defaultStorageClass),
	"excludeNamespaces": _strings(_merged.excludeNamespaces),
	"enforcement": _one_of(_merged.enforcement, {"deny", "warn", "dryrun"}, "deny"),
	"breakGlass": _merged.breakGlass == true,
	"maxImages": _positive(_merged.maxImages, defaults.maxImages),
	"maxLookups": _positive(_merged.maxLookups, defaults.maxLookups),
	"disallowedTags": _strings(_merged.disallowedTags),
	"requireDigest": _merged.requireDigest == true,
	"exemptImages": _strings(_merged.exemptImages),
	"pinDigests": _one_of(_merged.pinDigests, {"pods", "all"}, false),
	"signatures": _signature_entries(_merged.signatures),
}

# METADATA
# scope: document
# description: The namespace is excluded (by name or glob), so nothing is checked or changed.
default excluded := false

excluded if {
	some pattern in config.excludeNamespaces
	namespace_matches(pattern, namespace)
}

# METADATA
# description: |
#   The `namespaces` key whose override applies: an exact name beats any glob; among
#   globs the most literal (non-wildcard) characters win, ties go to the lexically
#   smallest key. Undefined when none matches.
override_key := namespace if {
	namespace != ""
	is_object(_overrides[namespace])
} else := key if {
	some key in _glob_keys
	every other in _glob_keys {
		not _ranks_before(other, key)
	}
}

# METADATA
# scope: document
# description: |
#   A namespace name or glob (`*`, `?`, `[...]`, `{a,b}`) matches the namespace. A review
#   without a namespace ("") matches nothing, not even "*".
namespace_matches(pattern, ns) if {
	ns != ""
	pattern == ns
}

namespace_matches(pattern, ns) if {
	ns != ""
	is_glob(pattern)
	glob.match(pattern, [], ns)
}

is_glob(pattern) if {
	some wildcard in ["*", "?", "[", "{"]
	contains(pattern, wildcard)
}

# METADATA
# description: |
#   Specificity of a glob: the characters it matches literally, i.e. all but `*`, `?`
#   and the `[...]` and `{...}` groups ("team-[ab]-*" has 6: "team-" and "-").
literals(pattern) := count(replace(replace(_ungroup(_ungroup(pattern, "[", "]"), "{", "}"), "*", ""), "?", ""))

_ungroup(pattern, open, close) := concat("", [parts[0], concat("", [_after(part, close) | some part in rest])]) if {
	parts := split(pattern, open)
	rest := array.slice(parts, 1, count(parts))
}

# What follows a group's closing character; the text of an unclosed group (an invalid
# glob, which matches nothing) still counts.
_after(part, close) := substring(part, indexof(part, close) + 1, -1) if {
	indexof(part, close) >= 0
} else := part

_ranks_before(a, b) if literals(a) > literals(b)

_ranks_before(a, b) if {
	literals(a) == literals(b)
	a < b
}

# data.imagegate.config: rego/data.json with the user's configuration merged over it.
_base := _replace(defaults, data.imagegate.config) if {
	is_object(data.imagegate.config)
} else := defaults

default _overrides := {}

_overrides := _base.namespaces if is_object(_base.namespaces)

_glob_keys contains key if {
	some key, value in _overrides
	is_object(value)
	is_glob(key)
	namespace_matches(key, namespace)
}

default _override := {}

_override := object.remove(_overrides[override_key], {"namespaces"}) if is_object(_overrides[override_key])

_merged := _replace(_base, _override)

# The keys of b replace those of a whole: object.union would merge a map key by key, and
# an override of `mirrors` could then neither drop a source nor turn mirrors off.
_replace(a, b) := object.union(object.remove(a, object.keys(b)), b)

_strings(value) := [s | some s in value; is_string(s)] if {
	is_array(value)
} else := [value] if {
	is_string(value)
} else := []

# Entries with at least one source and one signer (a key or a keyless identity); a
# malformed one is left out. `id` names the entry in facts requests: the gateway compiled it
# (keys, identities, trust roots, requirements) when the configuration loaded, so a request
# stays short; "" when the entry did not come through the gateway's loader, which then
# gathers no facts for it and the image is refused for want of them. `attestations`: the
# predicate types the entry reads, the loader's normalized {type, required} form.
_signature_entries(value) := [{
	"images": sources, "keys": keys, "identities": identities,
	"id": id, "attestations": attestations,
} |
	some entry in value
	is_object(entry)
	sources := _strings(object.get(entry, "images", []))
	keys := _strings(object.get(entry, "keys", []))
	identities := _objects(object.get(entry, "identities", []))
	count(sources) > 0
	count(keys) + count(identities) > 0
	id := _text(object.get(entry, "id", ""))
	attestations := [_attestation(a) | some a in _list(object.get(entry, "attestations", [])); _attestation(a)]
] if {
	is_array(value)
} else := []

_objects(value) := [o | some o in value; is_object(o)] if is_array(value)

else := []

_list(value) := value if is_array(value)

else := []

# A type alone is required; {type, required: false} is read for the policy only.
_attestation(a) := {"type": a, "required": true} if is_string(a)

_attestation(a) := {"type": a.type, "required": a.required != false} if {
	is_object(a)
	is_string(a.type)
}

_string_map(value) := {key: target |
	some key, raw in value
	is_string(key)
	target := _name(raw)
	target != null
} if {
	is_object(value)
} else := {}

_positive(value, fallback) := value if {
	is_number(value)
	value >= 1
	value == floor(value)
} else := fallback

_one_of(value, allowed, _) := value if value in allowed

_one_of(value, allowed, fallback) := fallback if not value in allowed

_text(value) := value if is_string(value)

_text(value) := "" if not is_string(value)

_name(value) := trim_space(value) if {
	is_string(value)
	trim_space(value) != ""
} else := null
