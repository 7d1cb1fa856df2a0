#!/usr/bin/env bash
# Build (or reuse) the servers of the Sigstore test bed (test/helpers/sigstore.ts) — Rekor v2
# with its log in a directory, the RFC 3161 timestamp authority and Fulcio — from the Go
# module proxy alone: no Docker, no release downloads. cosign 3 and 2, which sign against
# the bed, come from build-registry-tools.sh. Binaries go to a cache outside the repo, keyed
# by version:
#
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/rekor-tiles-<version>/rekor-server-posix
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/timestamp-authority-<version>/timestamp-server
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/fulcio-<version>/fulcio
#
#   build-sigstore-tools.sh          build what is missing, print the paths
#   build-sigstore-tools.sh --check  build nothing: print the paths, or exit 3 if one is
#                                    missing or stale (what the test helpers call)
#
# A warm run only checks the binaries' versions (well under a second). On stdout it prints
# REKOR=, TSA=, FULCIO= lines; progress, timings and module-cache growth go to stderr.
# Building needs Go >= 1.26 (Fulcio's go line); newer timestamp-authority and rekor-tiles
# releases need Go 1.27. Built and tested with Go 1.26.8.
set -euo pipefail

# Versions: the only place they are written down (the timestamp authority's is its wrapper
# module's go.mod, below).
# Rekor v2 (transparency-dev tiles); cmd/rekor-server/posix keeps the log in a directory,
# where v1 needs Trillian and MySQL.
REKOR_TILES_VERSION=2.3.0
# Fulcio with --ca ephemeralca: an in-memory CA, no KMS or HSM.
FULCIO_VERSION=1.8.8
# test/tools/timestamp-server is a module of this repo: upstream's server code behind a main
# without the Prometheus listener upstream hard-codes on :2112 (see its main.go); its go.mod
# pins github.com/sigstore/timestamp-authority/v2.
TSA_SRC=$(cd "$(dirname "$0")/../tools/timestamp-server" && pwd)

CHECK_ONLY=false
[[ ${1:-} == --check ]] && CHECK_ONLY=true

log() { printf 'sigstore-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
REBUILD_HINT='`make sigstore-tools`'
GO_NEEDED=1.26
# shellcheck source=build-lib.sh
source "$(dirname "$0")/build-lib.sh"
TSA_VERSION=$(sed -n 's#^require github.com/sigstore/timestamp-authority/v2 v\([^ ]*\)$#\1#p;s#^\tgithub.com/sigstore/timestamp-authority/v2 v\([^ ]*\)$#\1#p' \
	"$TSA_SRC/go.mod" | head -n1)
[[ -n $TSA_VERSION ]] || die "no timestamp-authority version in $TSA_SRC/go.mod"
REKOR=$CACHE/rekor-tiles-$REKOR_TILES_VERSION/rekor-server-posix
TSA=$CACHE/timestamp-authority-$TSA_VERSION/timestamp-server
FULCIO=$CACHE/fulcio-$FULCIO_VERSION/fulcio

# The wrapper carries a digest of its module's files: editing main.go rebuilds it.
TSA_SOURCE=$(cd "$TSA_SRC" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)

export CGO_ENABLED=0
$CHECK_ONLY || lock_cache

timestamp_server() {
	(cd "$TSA_SRC" && go build -trimpath -ldflags="-s -w -X main.source=$TSA_SOURCE" -o "$1.tmp" .)
}

t_all=$(clock)
# The whole run's module-cache growth, beside each build's (measure): what a cold CI adds.
MODCACHE=
$CHECK_ONLY || ! command -v go >/dev/null || MODCACHE=$(go env GOMODCACHE)
mb_all=$([[ -n $MODCACHE ]] && mb "$MODCACHE" || echo 0)
# Rekor and Fulcio print their version through sigs.k8s.io/release-utils, which falls back to
# the module version go install recorded ("GitVersion:    v1.8.8").
reuse "rekor-tiles $REKOR_TILES_VERSION" "$REKOR" have "v$REKOR_TILES_VERSION" "$REKOR" version ||
	measure "rekor-tiles $REKOR_TILES_VERSION (posix)" "$REKOR" go_install "$REKOR" \
		"github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix@v$REKOR_TILES_VERSION" "-s -w"
reuse "timestamp-authority $TSA_VERSION" "$TSA" have "v$TSA_VERSION $TSA_SOURCE" "$TSA" --version ||
	measure "timestamp-authority $TSA_VERSION (test/tools/timestamp-server)" "$TSA" timestamp_server "$TSA"
reuse "fulcio $FULCIO_VERSION" "$FULCIO" have "v$FULCIO_VERSION" "$FULCIO" version ||
	measure "fulcio $FULCIO_VERSION" "$FULCIO" go_install "$FULCIO" \
		"github.com/sigstore/fulcio@v$FULCIO_VERSION" "-s -w"
if [[ -n $MODCACHE ]]; then
	log "sigstore tools ready in $(since "$t_all") (cache: $CACHE;" \
		"module cache +$(($(mb "$MODCACHE") - mb_all)) MB in all)"
else
	log "sigstore tools ready in $(since "$t_all") (cache: $CACHE)"
fi

printf 'REKOR=%s\nTSA=%s\nFULCIO=%s\n' "$REKOR" "$TSA" "$FULCIO"
