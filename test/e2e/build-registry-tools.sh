#!/usr/bin/env bash
# Build (or reuse) what the registry tests run against — the CNCF distribution registry, a
# small registry with the OCI 1.1 referrers API, crane, and cosign 3 and 2 — from the Go
# module proxy alone: no Docker, no release downloads. Binaries go to a cache outside the
# repo, keyed by version:
#
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/distribution-<version>/registry
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/crane-<version>/crane
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/oras-<version>/oras
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/cosign-<version>/cosign   (one per major)
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/oci-registry-<ggcr version>/oci-registry
#
#   build-registry-tools.sh          build what is missing, print the paths
#   build-registry-tools.sh --check  build nothing: print the paths, or exit 3 if one is
#                                    missing or stale (what the test helpers call)
#
# A warm run only checks the binaries' versions (well under a second). On stdout it prints
# REGISTRY=, REFERRERS_REGISTRY=, CRANE=, COSIGN=, COSIGN2=, ORAS= lines; progress and timings go
# to stderr. Building needs Go >= 1.26 (distribution's and cosign 3's go line). Built and
# tested with Go 1.26.
set -euo pipefail

# Versions: the only place they are written down.
# The distribution registry has no referrers API (OCI 1.1): cosign 3 falls back to a tag.
DISTRIBUTION_VERSION=3.1.2
CRANE_VERSION=0.22.1
# oras pushes OPA bundles as OCI artifacts (the layout OPA's docs publish with it).
ORAS_VERSION=1.3.6
# cosign 3 signs in the Sigstore bundle format; cosign 2 writes the legacy .sig tag. Both
# are in use, and a verifier has to read what each writes.
COSIGN_VERSION=3.1.3
COSIGN2_VERSION=2.6.5
# test/tools/oci-registry is a module of this repo; its go.mod pins go-containerregistry
# (the same release as crane).
OCI_REGISTRY_SRC=$(cd "$(dirname "$0")/../tools/oci-registry" && pwd)

CHECK_ONLY=false
[[ ${1:-} == --check ]] && CHECK_ONLY=true

log() { printf 'registry-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
REBUILD_HINT='`make registry-tools`'
GO_NEEDED=1.26
# shellcheck source=build-lib.sh
source "$(dirname "$0")/build-lib.sh"
OCI_REGISTRY_GGCR=$(sed -n 's#^require github.com/google/go-containerregistry v\([^ ]*\)$#\1#p;s#^\tgithub.com/google/go-containerregistry v\([^ ]*\)$#\1#p' \
	"$OCI_REGISTRY_SRC/go.mod" | head -n1)
REGISTRY=$CACHE/distribution-$DISTRIBUTION_VERSION/registry
CRANE=$CACHE/crane-$CRANE_VERSION/crane
ORAS=$CACHE/oras-$ORAS_VERSION/oras
COSIGN=$CACHE/cosign-$COSIGN_VERSION/cosign
COSIGN2=$CACHE/cosign-$COSIGN2_VERSION/cosign
REFERRERS_REGISTRY=$CACHE/oci-registry-$OCI_REGISTRY_GGCR/oci-registry

[[ -n $OCI_REGISTRY_GGCR ]] || die "no go-containerregistry version in $OCI_REGISTRY_SRC/go.mod"

# The oci-registry binary carries a digest of its module's files: editing main.go rebuilds it.
OCI_REGISTRY_SOURCE=$(cd "$OCI_REGISTRY_SRC" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)

export CGO_ENABLED=0
$CHECK_ONLY || lock_cache

oci_registry() {
	(cd "$OCI_REGISTRY_SRC" && go build -trimpath -ldflags="-s -w -X main.source=$OCI_REGISTRY_SOURCE" -o "$1.tmp" .)
}

t_all=$(clock)
DIST_PKG=github.com/distribution/distribution/v3
# Upstream's Makefile sets the version through ldflags; `registry --version` prints it.
reuse "registry $DISTRIBUTION_VERSION" "$REGISTRY" have "v$DISTRIBUTION_VERSION" "$REGISTRY" --version ||
	measure "registry $DISTRIBUTION_VERSION" "$REGISTRY" go_install "$REGISTRY" \
		"$DIST_PKG/cmd/registry@v$DISTRIBUTION_VERSION" \
		"-s -w -X $DIST_PKG/version.version=v$DISTRIBUTION_VERSION -X $DIST_PKG/version.mainpkg=$DIST_PKG"
reuse "oci-registry $OCI_REGISTRY_SOURCE" "$REFERRERS_REGISTRY" have "oci-registry $OCI_REGISTRY_SOURCE" "$REFERRERS_REGISTRY" --version ||
	measure "oci-registry (go-containerregistry $OCI_REGISTRY_GGCR)" "$REFERRERS_REGISTRY" oci_registry "$REFERRERS_REGISTRY"
# crane and cosign read their version from the build info: the module version go install saw.
reuse "crane $CRANE_VERSION" "$CRANE" have "v$CRANE_VERSION" "$CRANE" version ||
	measure "crane $CRANE_VERSION" "$CRANE" go_install "$CRANE" \
		"github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION" "-s -w"
reuse "oras $ORAS_VERSION" "$ORAS" have "$ORAS_VERSION" "$ORAS" version ||
	measure "oras $ORAS_VERSION" "$ORAS" go_install "$ORAS" \
		"oras.land/oras/cmd/oras@v$ORAS_VERSION" "-s -w"
reuse "cosign $COSIGN2_VERSION" "$COSIGN2" have "v$COSIGN2_VERSION" "$COSIGN2" version ||
	measure "cosign $COSIGN2_VERSION" "$COSIGN2" go_install "$COSIGN2" \
		"github.com/sigstore/cosign/v2/cmd/cosign@v$COSIGN2_VERSION" "-s -w"
reuse "cosign $COSIGN_VERSION" "$COSIGN" have "v$COSIGN_VERSION" "$COSIGN" version ||
	measure "cosign $COSIGN_VERSION" "$COSIGN" go_install "$COSIGN" \
		"github.com/sigstore/cosign/v3/cmd/cosign@v$COSIGN_VERSION" "-s -w"
log "registry tools ready in $(since "$t_all") (cache: $CACHE)"

printf 'REGISTRY=%s\nREFERRERS_REGISTRY=%s\nCRANE=%s\nCOSIGN=%s\nCOSIGN2=%s\nORAS=%s\n' \
	"$REGISTRY" "$REFERRERS_REGISTRY" "$CRANE" "$COSIGN" "$COSIGN2" "$ORAS"
