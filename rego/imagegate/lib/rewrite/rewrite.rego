# METADATA
# description: |
#   Registry rewrite (SPEC rule 4): where an image is pulled from instead. `mirrors` maps
#   sources (a registry, or a registry with a repository prefix, matched like trusted
#   sources) to targets (a registry, optionally with a path: Harbor proxy-cache projects,
#   Artifactory virtual repositories); the most specific matching source wins and its
#   prefix is replaced by the target. `rewriteRegistry` is the catch-all for every other
#   image: `replace` puts it in place of the registry, `prepend` keeps the registry as the
#   first path component (pull-through caches). `rewriteIgnore` and images already on a
#   target's registry are left alone, and so is any image the rewrite would turn into an
#   invalid reference (a registry with a port or an IPv6 address cannot be a path
#   component in prepend mode; a name may not pass 255 characters).
package imagegate.lib.rewrite

import data.imagegate.lib.sources
import data.imagegate.settings

# METADATA
# description: |
#   The rewrite of a valid reference: {"image": the new image string, "reference": the
#   fields the rules read (domain, path, tag, digest)}. Undefined when nothing applies.
result(reference) := rewritten if {
	not sources.matches_any(settings.config.rewriteIgnore, reference)
	not _on_a_target(reference)
	route := _route(reference)
	rewritten := _build(route, reference)
	_valid(rewritten.reference)
}

# METADATA
# description: The reference an image is pulled from once rewritten (itself where no rewrite applies).
target(reference) := rewritten.reference if {
	rewritten := result(reference)
} else := reference

# Mirrors, parsed once per evaluation: [{source, target, prefix length}].
_mirrors := [{"source": source, "target": target, "length": count(parsed.prefix)} |
	some source, target in settings.config.mirrors
	parsed := sources.parse(source)
]

_target_hosts contains sources.host(_target_parts(mirror.target)[0]) if some mirror in _mirrors

_target_hosts contains sources.host(_target_parts(settings.config.rewriteRegistry)[0]) if {
	settings.config.rewriteRegistry != null
}

# An image on a target's registry is where a rewrite would send it (or one of that
# registry's own images): never rewritten again.
_on_a_target(reference) if sources.host(reference.domain) in _target_hosts

# The most specific mirror whose source matches (ties: the smallest source), else the
# catch-all. A route is {target, kept: the path components that follow the target}.
_route(reference) := {"target": chosen.target, "kept": kept} if {
	matching := [mirror | some mirror in _mirrors; sources.matches(mirror.source, reference)]
	count(matching) > 0
	longest := max({mirror.length | some mirror in matching})
	first := min({mirror.source | some mirror in matching; mirror.length == longest})
	components := split(reference.path, "/")
	some chosen in matching
	chosen.source == first
	kept := array.slice(components, chosen.length, count(components))
} else := {"target": settings.config.rewriteRegistry, "kept": _catch_all_kept(reference)} if {
	settings.config.rewriteRegistry != null
}

_catch_all_kept(reference) := split(reference.path, "/") if settings.config.rewriteMode == "replace"

_catch_all_kept(reference) := array.concat([reference.domain], split(reference.path, "/")) if {
	settings.config.rewriteMode == "prepend"
}

_target_parts(target) := split(trim_right(trim_space(target), "/"), "/")

_build(route, reference) := {
	"image": concat("", [parts[0], "/", path, sources.suffix(reference)]),
	"reference": object.union(reference, {"domain": lower(parts[0]), "path": path}),
} if {
	parts := _target_parts(route.target)
	path := concat("/", array.concat(array.slice(parts, 1, count(parts)), route.kept))
}

# The distribution grammar for what the rewrite builds: lower-case path components with
# single separators, a name of at most 255 characters.
_valid(reference) if {
	every component in split(reference.path, "/") {
		regex.match(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`, component)
	}
	count(concat("/", [reference.domain, reference.path])) <= 255
}

# METADATA
# description: |
#   What a rewrite would have turned into this reference: the source a mirror's target
#   stands for (`harbor.example.com/dockerhub-proxy/acme/app` is `docker.io/acme/app`), and
#   for the catch-all the registry it prepended, or in replace mode each of `hosts` (the
#   registry it replaced is gone, so any may have been it). A reference on a target's path
#   is judged as its origin too, whether the mutating webhook rewrote it or a pod spec
#   wrote it so, and a requirement on the source is not lost on the way (signatures).
origins(reference, hosts) := [origin |
	some found in [_mirror_origins(reference), _replaced_origins(reference, hosts), _prepended_origins(reference)]
	some origin in found
]

_mirror_origins(reference) := [object.union(reference, {
	"domain": source.host,
	"path": concat("/", array.concat(source.prefix, kept)),
}) |
	some mirror in _mirrors
	kept := _below(_target_parts(mirror.target), reference)
	source := sources.parse(mirror.source)
]

_replaced_origins(reference, hosts) := [object.union(reference, {"domain": host, "path": concat("/", kept)}) |
	settings.config.rewriteRegistry != null
	settings.config.rewriteMode == "replace"
	kept := _below(_target_parts(settings.config.rewriteRegistry), reference)
	some host in hosts
]

_prepended_origins(reference) := [object.union(reference, {
	"domain": kept[0],
	"path": concat("/", array.slice(kept, 1, count(kept))),
}) |
	settings.config.rewriteRegistry != null
	settings.config.rewriteMode == "prepend"
	kept := _below(_target_parts(settings.config.rewriteRegistry), reference)
	count(kept) > 1
]

# The path components of the reference below a target (host and path prefix); undefined
# unless the reference is on that target with at least one component of its own.
_below(target_parts, reference) := array.slice(components, count(prefix), count(components)) if {
	sources.host(target_parts[0]) == sources.host(reference.domain)
	prefix := array.slice(target_parts, 1, count(target_parts))
	components := split(reference.path, "/")
	count(prefix) < count(components)
	array.slice(components, 0, count(prefix)) == prefix
}
