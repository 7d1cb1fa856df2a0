# What build-control-plane.sh, build-registry-tools.sh and build-peers.sh share: the cache
# directory, timing, the module proxy's JSON, reuse checks, the build lock, and one timed
# build that never leaves a half-written binary behind. Sourced, not run; the caller
# defines log and die (its own prefix) and, before `reuse`, CHECK_ONLY and REBUILD_HINT.

# CACHE: absolute (callers may run the binaries from another directory), created.
CACHE=${IMAGEGATE_CACHE:-$HOME/.cache/imagegate}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

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

# have WANT BIN ARGS...: a binary is reused when it runs and its output contains WANT (the
# pinned version); anything else — missing, half-written, another arch — is rebuilt.
have() {
	local want=$1 out
	shift
	[[ -x $1 ]] && out=$("$@" 2>/dev/null) && [[ $out == *"$want"* ]]
}

# reuse NAME BIN CHECK...: true when the command CHECK... says BIN is current; with
# CHECK_ONLY a missing or stale one is fatal (exit 3), naming REBUILD_HINT.
reuse() {
	local name=$1 bin=$2
	shift 2
	if "$@"; then
		log "$name: reusing $bin"
		return 0
	fi
	$CHECK_ONLY && { log "$name is missing or stale at $bin: run $REBUILD_HINT"; exit 3; }
	return 1
}

# lock_cache: two concurrent runs (parallel make, two terminals) must not build into the
# same file; held until the script exits.
lock_cache() {
	if command -v flock >/dev/null; then
		exec 9>"$CACHE/.lock"
		flock 9
	fi
}

# measure NAME OUTPUT CMD...: run a build command that writes OUTPUT.tmp, then rename it, so
# an interrupted build never leaves a binary that looks finished. Reports time, module-cache
# growth and the binary's size. GO_NEEDED names the Go release the builds need.
measure() {
	local name=$1 out=$2 t0 mb0 dl0
	shift 2
	# Only a build needs Go: a cache restored by CI is used as is.
	command -v go >/dev/null || die "go is not on PATH (Go >= ${GO_NEEDED:-1.26} builds $name)"
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

# go_install OUTPUT PACKAGE@VERSION LDFLAGS: `go install` (for modules without replace
# directives) into a private GOBIN, then OUTPUT.tmp. The binary is named after the last
# path element, or the one before a major-version suffix (…/gatekeeper/v3 → gatekeeper).
go_install() {
	local out=$1 pkg=$2 ldflags=$3 gobin path name
	gobin=$(dirname "$out")/gobin.tmp
	path=${pkg%@*}
	name=$(basename "$path")
	[[ $name =~ ^v[0-9]+$ ]] && name=$(basename "$(dirname "$path")")
	rm -rf "$gobin"
	GOBIN=$gobin go install -trimpath -ldflags="$ldflags" "$pkg" &&
		mv "$gobin/$name" "$out.tmp" && rm -rf "$gobin"
}
