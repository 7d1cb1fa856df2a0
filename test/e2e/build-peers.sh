#!/usr/bin/env bash
# Build (or reuse) the peer admission controllers the benchmarks compare imagegate with —
# OPA Gatekeeper and Kyverno — from the Go module proxy alone: no Docker, no release
# downloads, no images. Binaries and the CRDs they need go to a cache outside the repo,
# keyed by version:
#
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/gatekeeper-<version>/{manager,crds/}
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/kyverno-<version>/{kyverno,crds/}
#
#   build-peers.sh          build what is missing, print the paths
#   build-peers.sh --check  build nothing: print the paths, or exit 3 if one is missing or
#                           stale (what the benchmark helpers call)
#
# A warm run only checks the binaries (well under a second). On stdout it prints
# GATEKEEPER=, GATEKEEPER_CRDS=, KYVERNO=, KYVERNO_CRDS= lines; progress and timings go to
# stderr. Building needs Go >= 1.26.6 (Kyverno's go line). Built and tested with Go 1.26.
# test/bench/cluster/peers.mjs runs both out of cluster against test/e2e/control-plane.sh.
set -euo pipefail

# Versions: the only place they are written down.
# Gatekeeper's go.mod has no replace directives and main.go (the manager: webhook, audit,
# mutation) is at the module root, so `go install …@version` builds it.
GATEKEEPER_VERSION=3.23.1
# Kyverno's go.mod replaces k8s.io/pod-security-admission with its fork, so `go install`
# refuses it: cmd/kyverno (the admission controller) is built through a wrapper module.
KYVERNO_VERSION=1.19.1

CHECK_ONLY=false
[[ ${1:-} == --check ]] && CHECK_ONLY=true

log() { printf 'peers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
REBUILD_HINT='test/e2e/build-peers.sh (make peers)'
GO_NEEDED=1.26.6
# shellcheck source=build-lib.sh
source "$(dirname "$0")/build-lib.sh"
GK_DIR=$CACHE/gatekeeper-$GATEKEEPER_VERSION
KY_DIR=$CACHE/kyverno-$KYVERNO_VERSION
GATEKEEPER=$GK_DIR/manager
KYVERNO=$KY_DIR/kyverno
GK_MOD=github.com/open-policy-agent/gatekeeper/v3
KY_MOD=github.com/kyverno/kyverno

# built MODULE VERSION BIN: neither binary has a version flag (both log their version once
# connected to a cluster), so a binary is reused when it runs (`-h` exits 0 for Go's flag
# package and Kyverno's) and its embedded build info names the pinned module version
# ("mod" for go install, "dep" through a wrapper); the CRDs copied beside it must be there.
built() {
	local mod=$1 version=$2 bin=$3
	[[ -x $bin && -n $(ls "$(dirname "$bin")/crds" 2>/dev/null) ]] &&
		"$bin" -h >/dev/null 2>&1 &&
		LC_ALL=C grep -aqE "(mod|dep)	$mod	v$version	" "$bin"
}

# crds_from DIR SRC...: the CRD files beside a binary, written to crds.tmp and renamed (the
# binary is renamed after them, by measure, so a finished-looking binary has its CRDs).
crds_from() {
	local dir=$1
	shift
	rm -rf "$dir/crds.tmp" && mkdir -p "$dir/crds.tmp" && cp "$@" "$dir/crds.tmp/" &&
		chmod -R u+w "$dir/crds.tmp" && rm -rf "$dir/crds" && mv "$dir/crds.tmp" "$dir/crds"
}

export CGO_ENABLED=0
$CHECK_ONLY || lock_cache

# --- Gatekeeper -------------------------------------------------------------------------
# Upstream's Makefile: `go build -o bin/manager -ldflags "-X …/pkg/version.Version=$(VERSION)"`
# at the module root, CGO off. The CRDs are the Helm chart's (charts/gatekeeper/crds: the
# config/crd bases after kustomize, one file per CRD, no templating): constraint templates,
# mutators (Assign, AssignMetadata, ModifySet, AssignImage), Config, Provider, Expansion,
# SyncSet, Connection and the *PodStatus kinds the manager writes.
gatekeeper() {
	local src
	go_install "$GATEKEEPER" "$GK_MOD@v$GATEKEEPER_VERSION" \
		"-s -w -X $GK_MOD/pkg/version.Version=v$GATEKEEPER_VERSION" || return 1
	src=$(download "$GK_MOD@v$GATEKEEPER_VERSION" | json_field Dir)/charts/gatekeeper/crds
	[[ -f $src/constrainttemplate-customresourcedefinition.yaml ]] || { log "no CRDs in $src"; return 1; }
	crds_from "$GK_DIR" "$src"/*.yaml
}

# --- Kyverno ----------------------------------------------------------------------------
# The wrapper's go.mod is upstream's with the module renamed and Kyverno itself required:
# the same require lines (so every dependency is the version upstream builds with) and the
# same replace (the pod-security-admission fork). Upstream's go.sum comes along, so no
# hash is fetched but Kyverno's own. ldflags as upstream's Makefile (-s -w, BuildVersion).
# The CRDs: config/crds (kyverno.io, policies.kyverno.io, reports.kyverno.io, wgpolicyk8s.io).
kyverno_wrapper() {
	local w=$KY_DIR/wrapper json gomod dir
	if [[ -f $w/go.sum ]] && grep -q "^require $KY_MOD v$KYVERNO_VERSION\$" "$w/go.mod"; then
		echo "$w"
		return
	fi
	rm -rf "$w" "$w.tmp" && mkdir -p "$w.tmp"
	json=$(cd "$w.tmp" && download "$KY_MOD@v$KYVERNO_VERSION")
	gomod=$(json_field GoMod <<<"$json")
	dir=$(json_field Dir <<<"$json")
	[[ -f $gomod && -f $dir/go.sum ]] || die "no go.mod/go.sum for $KY_MOD@v$KYVERNO_VERSION"
	grep -q '^replace .* => \.' "$gomod" && die "$gomod has a relative replace; the wrapper can't copy it"
	{
		sed "s#^module .*#module imagegate.local/kyverno-wrapper#" "$gomod" | grep -v '^tool '
		printf '\nrequire %s v%s\n' "$KY_MOD" "$KYVERNO_VERSION"
	} >"$w.tmp/go.mod"
	cp "$dir/go.sum" "$w.tmp/go.sum" && chmod u+w "$w.tmp/go.sum"
	mv "$w.tmp" "$w"
	echo "$w"
}
kyverno() {
	local w src
	w=$(kyverno_wrapper) || return 1
	(cd "$w" && go build -mod=mod -trimpath \
		-ldflags="-s -w -X $KY_MOD/pkg/version.BuildVersion=v$KYVERNO_VERSION" \
		-o "$KYVERNO.tmp" "$KY_MOD/cmd/kyverno") || return 1
	src=$(cd "$w" && download "$KY_MOD@v$KYVERNO_VERSION" | json_field Dir)/config/crds
	[[ -f $src/kyverno/kyverno.io_clusterpolicies.yaml ]] || { log "no CRDs in $src"; return 1; }
	crds_from "$KY_DIR" "$src"/*/*.yaml
}

t_all=$(clock)
reuse "gatekeeper $GATEKEEPER_VERSION" "$GATEKEEPER" built "$GK_MOD" "$GATEKEEPER_VERSION" "$GATEKEEPER" ||
	measure "gatekeeper $GATEKEEPER_VERSION" "$GATEKEEPER" gatekeeper
reuse "kyverno $KYVERNO_VERSION" "$KYVERNO" built "$KY_MOD" "$KYVERNO_VERSION" "$KYVERNO" ||
	measure "kyverno $KYVERNO_VERSION" "$KYVERNO" kyverno
log "peers ready in $(since "$t_all") (cache: $CACHE)"

printf 'GATEKEEPER=%s\nGATEKEEPER_CRDS=%s\nKYVERNO=%s\nKYVERNO_CRDS=%s\n' \
	"$GATEKEEPER" "$GK_DIR/crds" "$KYVERNO" "$KY_DIR/crds"
