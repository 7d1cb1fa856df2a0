#!/usr/bin/env bash
# Build (or reuse) what the registry tests run against — the CNCF distribution registry, a
# small registry with the OCI 1.1 referrers API, crane, and cosign 3 and 2 — from the Go
# module proxy alone: no Docker, no release downloads. Binaries go to a cache outside the
# repo, keyed by version:
#
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/distribution-<version>/registry
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/crane-<version>/crane
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/cosign-<version>/cosign   (one per major)
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/oci-registry-<ggcr version>/oci-registry
#
#   build-registry-tools.sh          build what is missing, print the paths
#   build-registry-tools.sh --check  build nothing: print the paths, or exit 3 if one is
#                                    missing or stale (what the test helpers call)
#
# A warm run only checks the binaries' versions (well under a second). On stdout it prints
# REGISTRY=, REFERRERS_REGISTRY=, CRANE=, COSIGN=, COSIGN2= lines; progress and timings go
# to stderr. Building needs Go >= 1.26 (distribution's and cosign 3's go line). Built and
# tested with Go 1.26.
set -euo pipefail

# Versions: the only place they are written down.
# The distribution registry has no referrers API (OCI 1.1): cosign 3 falls back to a tag.
DISTRIBUTION_VERSION=3.1.2
CRANE_VERSION=0.22.1
# cosign 3 signs in the Sigstore bundle format; cosign 2 writes the legacy .sig tag. Both
# are in use, and a verifier has to read what each writes.
COSIGN_VERSION=3.1.3
COSIGN2_VERSION=2.6.5
# test/tools/oci-registry is a module of this repo; its go.mod pins go-containerregistry
# (the same release as crane).
OCI_REGISTRY_SRC=$(cd "$(dirname "$0")/../tools/oci-registry" && pwd)

CHECK_ONLY=false
[[ ${1:-} == --check ]] && CHECK_ONLY=true

CACHE=${IMAGEGATE_CACHE:-$HOME/.cache/imagegate}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd) # callers may run the binaries from another directory
OCI_REGISTRY_GGCR=$(sed -n 's#^require github.com/google/go-containerregistry v\([^ ]*\)$#\1#p;s#^\tgithub.com/google/go-containerregistry v\([^ ]*\)$#\1#p' \
	"$OCI_REGISTRY_SRC/go.mod" | head -n1)
REGISTRY=$CACHE/distribution-$DISTRIBUTION_VERSION/registry
CRANE=$CACHE/crane-$CRANE_VERSION/crane
COSIGN=$CACHE/cosign-$COSIGN_VERSION/cosign
COSIGN2=$CACHE/cosign-$COSIGN2_VERSION/cosign
REFERRERS_REGISTRY=$CACHE/oci-registry-$OCI_REGISTRY_GGCR/oci-registry

log() { printf 'registry-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ -n $OCI_REGISTRY_GGCR ]] || die "no go-containerregistry version in $OCI_REGISTRY_SRC/go.mod"

# Wall-clock seconds with millisecond precision where bash has EPOCHREALTIME (bash >= 5).
clock() { if [[ -n ${EPOCHREALTIME:-} ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
since() { awk -v a="$1" -v b="$(clock)" 'BEGIN { printf "%.1fs", b - a }'; }
mb() { du -sm "$1" 2>/dev/null | cut -f1 || echo 0; }

# have WANT BIN ARGS...: a binary is reused when it runs and its output contains WANT (the
# pinned version); anything else — missing, half-written, another arch — is rebuilt.
have() {
	local want=$1 out
	shift
	[[ -x $1 ]] && out=$("$@" 2>/dev/null) && [[ $out == *"$want"* ]]
}

# The oci-registry binary carries a digest of its module's files: editing main.go rebuilds it.
OCI_REGISTRY_SOURCE=$(cd "$OCI_REGISTRY_SRC" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)

# reuse NAME WANT BIN ARGS...: true when BIN is current; with --check, a stale one is fatal.
reuse() {
	local name=$1 want=$2
	shift 2
	if have "$want" "$@"; then
		log "$name: reusing $1"
		return 0
	fi
	$CHECK_ONLY && { log "$name is missing or stale at $1: run \`make registry-tools\`"; exit 3; }
	return 1
}

export CGO_ENABLED=0
if ! $CHECK_ONLY; then
	# Two concurrent runs (parallel make, two terminals) must not build into the same file.
	if command -v flock >/dev/null; then
		exec 9>"$CACHE/.lock"
		flock 9
	fi
fi

# measure NAME OUTPUT CMD...: run a build command that writes OUTPUT.tmp, then rename it, so
# an interrupted build never leaves a binary that looks finished. Reports time and
# module-cache growth.
measure() {
	local name=$1 out=$2 t0 mb0 dl0
	shift 2
	# Only a build needs Go: a cache restored by CI is used as is.
	command -v go >/dev/null || die "go is not on PATH (Go >= 1.26 builds $name)"
	GOMODCACHE=$(go env GOMODCACHE)
	t0=$(clock)
	mb0=$(mb "$GOMODCACHE")
	dl0=$(mb "$GOMODCACHE/cache/download")
	log "building $name..."
	mkdir -p "$(dirname "$out")"
	rm -f "$out.tmp"
	"$@" || die "building $name failed (see above)"
	mv -f "$out.tmp" "$out"
	log "built $name in $(since "$t0"): module cache +$(($(mb "$GOMODCACHE") - mb0)) MB" \
		"(downloads +$(($(mb "$GOMODCACHE/cache/download") - dl0)) MB), binary $(mb "$out") MB"
}

# install OUTPUT PACKAGE@VERSION LDFLAGS: `go install` (none of these modules has replace
# directives) into a private GOBIN, then OUTPUT.tmp.
install() {
	local out=$1 pkg=$2 ldflags=$3 gobin
	gobin=$(dirname "$out")/gobin.tmp
	rm -rf "$gobin"
	GOBIN=$gobin go install -trimpath -ldflags="$ldflags" "$pkg" &&
		mv "$gobin/$(basename "${pkg%@*}")" "$out.tmp" && rm -rf "$gobin"
}

oci_registry() {
	(cd "$OCI_REGISTRY_SRC" && go build -trimpath -ldflags="-s -w -X main.source=$OCI_REGISTRY_SOURCE" -o "$1.tmp" .)
}

t_all=$(clock)
DIST_PKG=github.com/distribution/distribution/v3
# Upstream's Makefile sets the version through ldflags; `registry --version` prints it.
reuse "registry $DISTRIBUTION_VERSION" "v$DISTRIBUTION_VERSION" "$REGISTRY" --version ||
	measure "registry $DISTRIBUTION_VERSION" "$REGISTRY" install "$REGISTRY" \
		"$DIST_PKG/cmd/registry@v$DISTRIBUTION_VERSION" \
		"-s -w -X $DIST_PKG/version.version=v$DISTRIBUTION_VERSION -X $DIST_PKG/version.mainpkg=$DIST_PKG"
reuse "oci-registry $OCI_REGISTRY_SOURCE" "oci-registry $OCI_REGISTRY_SOURCE" "$REFERRERS_REGISTRY" --version ||
	measure "oci-registry (go-containerregistry $OCI_REGISTRY_GGCR)" "$REFERRERS_REGISTRY" oci_registry "$REFERRERS_REGISTRY"
# crane and cosign read their version from the build info: the module version go install saw.
reuse "crane $CRANE_VERSION" "v$CRANE_VERSION" "$CRANE" version ||
	measure "crane $CRANE_VERSION" "$CRANE" install "$CRANE" \
		"github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION" "-s -w"
reuse "cosign $COSIGN2_VERSION" "v$COSIGN2_VERSION" "$COSIGN2" version ||
	measure "cosign $COSIGN2_VERSION" "$COSIGN2" install "$COSIGN2" \
		"github.com/sigstore/cosign/v2/cmd/cosign@v$COSIGN2_VERSION" "-s -w"
reuse "cosign $COSIGN_VERSION" "v$COSIGN_VERSION" "$COSIGN" version ||
	measure "cosign $COSIGN_VERSION" "$COSIGN" install "$COSIGN" \
		"github.com/sigstore/cosign/v3/cmd/cosign@v$COSIGN_VERSION" "-s -w"
log "registry tools ready in $(since "$t_all") (cache: $CACHE)"

printf 'REGISTRY=%s\nREFERRERS_REGISTRY=%s\nCRANE=%s\nCOSIGN=%s\nCOSIGN2=%s\n' \
	"$REGISTRY" "$REFERRERS_REGISTRY" "$CRANE" "$COSIGN" "$COSIGN2"
