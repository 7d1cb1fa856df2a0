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

CACHE=${IMAGEGATE_CACHE:-$HOME/.cache/imagegate}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd) # callers may run the binaries from another directory
GK_DIR=$CACHE/gatekeeper-$GATEKEEPER_VERSION
KY_DIR=$CACHE/kyverno-$KYVERNO_VERSION
GATEKEEPER=$GK_DIR/manager
KYVERNO=$KY_DIR/kyverno
GK_MOD=github.com/open-policy-agent/gatekeeper/v3
KY_MOD=github.com/kyverno/kyverno

log() { printf 'peers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Wall-clock seconds with millisecond precision where bash has EPOCHREALTIME (bash >= 5).
clock() { if [[ -n ${EPOCHREALTIME:-} ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
since() { awk -v a="$1" -v b="$(clock)" 'BEGIN { printf "%.1fs", b - a }'; }
mb() { du -sm "$1" 2>/dev/null | cut -f1 || echo 0; }

# `go mod download -json` prints one field per line; pull a string field out of it.
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" | head -n1; }
# download MODULE@VERSION: fetch it into the module cache; print go's JSON about it.
download() {
	local json err
	json=$(go mod download -json "$1") || true
	err=$(json_field Error <<<"$json")
	[[ -z $err && -n $json ]] || die "go mod download $1: ${err:-failed}"
	printf '%s\n' "$json"
}

# have MODULE VERSION BIN: neither binary has a version flag (both log their version once
# connected to a cluster), so a binary is reused when it runs (`-h` exits 0 for Go's flag
# package and Kyverno's) and its embedded build info names the pinned module version
# ("mod" for go install, "dep" through a wrapper); the CRDs copied beside it must be there.
have() {
	local mod=$1 version=$2 bin=$3
	[[ -x $bin && -n $(ls "$(dirname "$bin")/crds" 2>/dev/null) ]] &&
		"$bin" -h >/dev/null 2>&1 &&
		LC_ALL=C grep -aqE "(mod|dep)	$mod	v$version	" "$bin"
}

# reuse NAME MODULE VERSION BIN: true when BIN is current; with --check, a stale one is fatal.
reuse() {
	local name=$1
	shift
	if have "$@"; then
		log "$name: reusing $3"
		return 0
	fi
	$CHECK_ONLY && { log "$name is missing or stale at $3: run test/e2e/build-peers.sh"; exit 3; }
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

# measure NAME OUTPUT CMD...: run a build command that writes OUTPUT.tmp (and OUTPUT's
# crds.tmp/), then rename them, so an interrupted build never leaves a binary that looks
# finished. Reports time, module-cache growth and the binary's size.
measure() {
	local name=$1 out=$2 t0 mb0 dl0 dir
	shift 2
	# Only a build needs Go: a cache restored by CI is used as is.
	command -v go >/dev/null || die "go is not on PATH (Go >= 1.26.6 builds $name)"
	GOMODCACHE=$(go env GOMODCACHE)
	t0=$(clock)
	mb0=$(mb "$GOMODCACHE")
	dl0=$(mb "$GOMODCACHE/cache/download")
	log "building $name..."
	dir=$(dirname "$out")
	mkdir -p "$dir"
	rm -rf "$out.tmp" "$dir/crds.tmp"
	"$@" || die "building $name failed (see above)"
	rm -rf "$dir/crds"
	mv "$dir/crds.tmp" "$dir/crds"
	mv -f "$out.tmp" "$out"
	log "built $name in $(since "$t0"): module cache +$(($(mb "$GOMODCACHE") - mb0)) MB" \
		"(downloads +$(($(mb "$GOMODCACHE/cache/download") - dl0)) MB), binary $(mb "$out") MB"
}

# --- Gatekeeper -------------------------------------------------------------------------
# Upstream's Makefile: `go build -o bin/manager -ldflags "-X …/pkg/version.Version=$(VERSION)"`
# at the module root, CGO off. The CRDs are the Helm chart's (charts/gatekeeper/crds: the
# config/crd bases after kustomize, one file per CRD, no templating): constraint templates,
# mutators (Assign, AssignMetadata, ModifySet, AssignImage), Config, Provider, Expansion,
# SyncSet, Connection and the *PodStatus kinds the manager writes.
gatekeeper() {
	local gobin=$GK_DIR/gobin.tmp src
	rm -rf "$gobin"
	GOBIN=$gobin go install -trimpath \
		-ldflags="-s -w -X $GK_MOD/pkg/version.Version=v$GATEKEEPER_VERSION" \
		"$GK_MOD@v$GATEKEEPER_VERSION" || return 1
	mv "$gobin/v3" "$GATEKEEPER.tmp" 2>/dev/null || mv "$gobin/gatekeeper" "$GATEKEEPER.tmp" || return 1
	rm -rf "$gobin"
	src=$(download "$GK_MOD@v$GATEKEEPER_VERSION" | json_field Dir)/charts/gatekeeper/crds
	[[ -f $src/constrainttemplate-customresourcedefinition.yaml ]] || { log "no CRDs in $src"; return 1; }
	mkdir -p "$GK_DIR/crds.tmp" && cp "$src"/*.yaml "$GK_DIR/crds.tmp/" && chmod -R u+w "$GK_DIR/crds.tmp"
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
	w=$(kyverno_wrapper)
	(cd "$w" && go build -mod=mod -trimpath \
		-ldflags="-s -w -X $KY_MOD/pkg/version.BuildVersion=v$KYVERNO_VERSION" \
		-o "$KYVERNO.tmp" "$KY_MOD/cmd/kyverno") || return 1
	src=$(cd "$w" && download "$KY_MOD@v$KYVERNO_VERSION" | json_field Dir)/config/crds
	[[ -f $src/kyverno/kyverno.io_clusterpolicies.yaml ]] || { log "no CRDs in $src"; return 1; }
	mkdir -p "$KY_DIR/crds.tmp" && cp "$src"/*/*.yaml "$KY_DIR/crds.tmp/" && chmod -R u+w "$KY_DIR/crds.tmp"
}

t_all=$(clock)
reuse "gatekeeper $GATEKEEPER_VERSION" "$GK_MOD" "$GATEKEEPER_VERSION" "$GATEKEEPER" ||
	measure "gatekeeper $GATEKEEPER_VERSION" "$GATEKEEPER" gatekeeper
reuse "kyverno $KYVERNO_VERSION" "$KY_MOD" "$KYVERNO_VERSION" "$KYVERNO" ||
	measure "kyverno $KYVERNO_VERSION" "$KYVERNO" kyverno
log "peers ready in $(since "$t_all") (cache: $CACHE)"

printf 'GATEKEEPER=%s\nGATEKEEPER_CRDS=%s\nKYVERNO=%s\nKYVERNO_CRDS=%s\n' \
	"$GATEKEEPER" "$GK_DIR/crds" "$KYVERNO" "$KY_DIR/crds"
