# METADATA
# description: |
#   Which `signatures` entry covers an image: entries list sources (as trustedRegistries:
#   the source and everything below it; or globs on registry/path, which match whole
#   repositories: `*` within a component, `**` across components) and signers; the most specific
#   matching source wins (the most path components), so a stricter entry for
#   registry.example.com/prod is not widened by a broader one for registry.example.com.
package imagegate.lib.signatures

import data.imagegate.lib.rewrite
import data.imagegate.lib.sources
import data.imagegate.settings

# The entries with their sources' specificity, once per evaluation.
_entries := [{"sources": entry.images, "id": entry.id, "attestations": entry.attestations} |
	some entry in settings.config.signatures
]

# The glob language (README "Globs", src/policy/image-globs.ts): `*` and `?` within one
# path component, `**` across components; glob.match with "/" as the delimiter reads it.
_is_glob(source) if {
	some wildcard in ["*", "?"]
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
#   The entry an image must be verified by (its id, the attestations it reads) and the
#   source that asks it; undefined when no entry covers it. An image is known by several
#   references — the one pulled, the one written, and what a rewrite made either of
#   (rewrite.origins: a mirror's source) — and an entry covering any of them applies
#   (SPEC: a requirement covering the written or the rewritten reference applies); the
#   most specific entry wins.
required_any(references) := {"id": best.id, "scope": best.scope, "attestations": best.attestations} if {
	candidates := {candidate |
		some reference in references
		some candidate in array.concat([reference], rewrite.origins(reference, _hosts))
	}
	covering := [{"id": entry.id, "attestations": entry.attestations, "scope": source, "length": length} |
		some reference in candidates
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

# The registries `signatures` entries name: what a catch-all rewrite in replace mode may
# have replaced.
_hosts contains sources.host(split(trim_space(source), "/")[0]) if {
	some entry in _entries
	some source in entry.sources
}
