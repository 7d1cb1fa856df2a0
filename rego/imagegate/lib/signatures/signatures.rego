# METADATA
# description: |
#   Which `signatures` entry covers an image: entries list sources (as trustedRegistries,
#   or globs on registry/path with `*` within a component) and keys; the most specific
#   matching source wins (the most path components), so a stricter entry for
#   registry.example.com/prod is not widened by a broader one for registry.example.com.
package imagegate.lib.signatures

import data.imagegate.lib.sources
import data.imagegate.settings

# The entries with their sources' specificity, once per evaluation.
_entries := [{"sources": entry.images, "keys": entry.keys} |
	some entry in settings.config.signatures
]

_is_glob(source) if {
	some wildcard in ["*", "?", "["]
	contains(source, wildcard)
}

_covers(source, reference) := count(sources.parse(source).prefix) if {
	not _is_glob(source)
	sources.matches(source, reference)
}

_covers(source, reference) := count(parts) - 1 if {
	_is_glob(source)
	parts := split(lower(trim_space(source)), "/")
	glob.match(
		concat("/", array.concat([sources.host(parts[0])], array.slice(parts, 1, count(parts)))),
		["/"],
		concat("/", [sources.host(reference.domain), reference.path]),
	)
}

# METADATA
# description: |
#   The keys a valid reference must be signed with (by one of them), and the sources of
#   the entry that asks it; undefined when no entry covers the reference.
required(reference) := {"keys": best.keys, "scope": best.scope} if {
	covering := [{"keys": entry.keys, "scope": source, "length": length} |
		some entry in _entries
		some source in entry.sources
		length := _covers(source, reference)
	]
	count(covering) > 0
	longest := max({c.length | some c in covering})
	scope := min({c.scope | some c in covering; c.length == longest})
	some best in covering
	best.scope == scope
}

# METADATA
# description: The keys required of a reference; none when no entry covers it.
keys(reference) := entry.keys if {
	entry := required(reference)
} else := []
