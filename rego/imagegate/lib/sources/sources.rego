# METADATA
# description: |
#   Image sources (SPEC rule 1 and 4): a source is a registry host, optionally followed
#   by a repository prefix. Matching works on the parsed reference only, on the host
#   (case-insensitive, Docker Hub aliases folded) and on whole path components, never on
#   raw string prefixes: `ghcr.io/acme` admits `ghcr.io/acme/app`, not `ghcr.io/acmeevil/app`
#   and not `ghcr.io.evil.io/acme/app`.
package imagegate.lib.sources

# Hosts that are Docker Hub under another name. The reference parser already folds
# index.docker.io; a configured source may still spell either alias.
hub_aliases := {
	"index.docker.io": "docker.io",
	"registry-1.docker.io": "docker.io",
}

# METADATA
# description: A registry host as compared (lower case, Docker Hub aliases folded).
host(name) := object.get(hub_aliases, lower(name), lower(name))

# METADATA
# description: |
#   A source as {"host", "prefix": [path components]}; surrounding space and trailing "/"
#   are ignored. Repository paths are lower case by grammar, so the whole source is
#   lower-cased. Undefined for an empty source, which then matches nothing.
parse(source) := {"host": host(parts[0]), "prefix": array.slice(parts, 1, count(parts))} if {
	trimmed := trim_right(trim_space(source), "/")
	trimmed != ""
	parts := split(lower(trimmed), "/")
}

# METADATA
# description: The reference (parsed, valid) comes from the source.
matches(source, reference) if {
	src := parse(source)
	src.host == host(reference.domain)
	components := split(reference.path, "/")
	count(src.prefix) <= count(components)
	array.slice(components, 0, count(src.prefix)) == src.prefix
}

# METADATA
# description: The reference comes from any of the sources.
matches_any(sources, reference) if {
	some source in sources
	matches(source, reference)
}

# METADATA
# description: |
#   matches_any for sources parsed once (a list of parse results): per image, the host is
#   folded and the path split once, not once per source. Large pods evaluate thousands.
matches_any_parsed(parsed, reference) if {
	reference_host := host(reference.domain)
	components := split(reference.path, "/")
	some src in parsed
	src.host == reference_host
	count(src.prefix) <= count(components)
	array.slice(components, 0, count(src.prefix)) == src.prefix
}

# METADATA
# description: The ":tag" and "@digest" of a reference, each only when present.
suffix(reference) := concat("", [_prefixed(":", reference.tag), _prefixed("@", reference.digest)])

_prefixed(_, "") := ""

_prefixed(mark, value) := concat("", [mark, value]) if value != ""
