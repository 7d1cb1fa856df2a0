#!/usr/bin/env bash
# Build (or reuse) the node's runtime for the end-to-end tests — containerd 2 with its runc
# shim and ctr, runc, the CNI plugins the bed's pod network uses, and the two images every
# node needs (the sandbox's pause and a busybox) — from the Go module proxy and Debian's
# packages alone: no Docker, no release downloads. The kubelet and kube-scheduler come from
# build-control-plane.sh (the control plane's version and wrapper module). Cached outside
# the repo, keyed by version:
#
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/containerd-<version>/{containerd,containerd-shim-runc-v2,ctr}
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/runc-<version>/runc
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/cni-plugins-<version>/{bridge,host-local,loopback,portmap}
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/node-images-<digest>/{pause,busybox}/   (image roots)
#
#   build-node.sh          build what is missing, print the paths
#   build-node.sh --check  build nothing: print the paths, or exit 3 if one is missing or stale
#
# On stdout: CONTAINERD=, CONTAINERD_SHIM=, CTR=, RUNC=, CNI_BIN_DIR=, PAUSE_ROOT=,
# BUSYBOX_ROOT= lines; progress and timings on stderr. A cold build took about 4 minutes on
# two busy cores; a warm run well under a second.
set -euo pipefail

# Versions: the only place they are written down.
# containerd 2: the CRI runtime (Debian's 1.6 is too old for current kubelets). It still
# supports cgroup v1, which these machines mount (deprecated since 2.2, kept until 2029).
CONTAINERD_VERSION=2.4.2
# runc needs cgo (its nsexec is C) and, for seccomp profiles (containerd gives every pod
# sandbox RuntimeDefault, the chart's pods ask for it), libseccomp: Debian's libseccomp-dev,
# fetched with `apt-get download` and linked statically — nothing installed system-wide.
RUNC_VERSION=1.5.3
LIBSECCOMP_PACKAGE=libseccomp-dev
CNI_PLUGINS_VERSION=1.10.0
# Debian's statically linked busybox: a shell, cat, sleep — the bed's test image. `apt-get
# download` fetches the package the machine's apt lists name; its version is recorded.
BUSYBOX_PACKAGE=busybox-static
PAUSE_SRC=$(cd "$(dirname "$0")/../tools/pause" && pwd)

CHECK_ONLY=false
[[ ${1:-} == --check ]] && CHECK_ONLY=true

log() { printf 'node-runtime: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
REBUILD_HINT='`make node-runtime`'
GO_NEEDED=1.26
# shellcheck source=build-lib.sh
source "$(dirname "$0")/build-lib.sh"
CONTAINERD_DIR=$CACHE/containerd-$CONTAINERD_VERSION
RUNC=$CACHE/runc-$RUNC_VERSION/runc
CNI_BIN_DIR=$CACHE/cni-plugins-$CNI_PLUGINS_VERSION
# The pause binary carries a digest of its source: editing main.go rebuilds it.
PAUSE_SOURCE=$(cd "$PAUSE_SRC" && cat go.mod main.go | sha256sum | cut -c1-12)
IMAGES_DIR=$CACHE/node-images-$PAUSE_SOURCE

export CGO_ENABLED=0
$CHECK_ONLY || lock_cache

t_all=$(clock)
CTRD=github.com/containerd/containerd/v2
for bin in containerd containerd-shim-runc-v2 ctr; do
	out=$CONTAINERD_DIR/$bin
	case $bin in
	containerd-shim-runc-v2) check=(have "$CONTAINERD_VERSION" "$out" -v) ;;
	*) check=(have "$CONTAINERD_VERSION" "$out" --version) ;;
	esac
	reuse "$bin $CONTAINERD_VERSION" "$out" "${check[@]}" ||
		measure "$bin $CONTAINERD_VERSION" "$out" go_install "$out" "$CTRD/cmd/$bin@v$CONTAINERD_VERSION" \
			"-s -w -X $CTRD/version.Version=$CONTAINERD_VERSION"
done

# deb PACKAGE DIR: the Debian package's files under DIR/root (apt-get download, dpkg-deb -x).
deb() {
	# As root into a root-only cache: apt's _apt sandbox user could not write there.
	local get=(apt-get -o APT::Sandbox::User=root download "$1")
	rm -rf "$2" && mkdir -p "$2"
	# apt-get download needs the package lists; a fresh machine may have none yet.
	(cd "$2" && "${get[@]}" >&2) || { apt-get update >&2 && (cd "$2" && "${get[@]}" >&2); } || return 1
	dpkg-deb -x "$2"/*.deb "$2/root"
}
runc_install() {
	local sc=$CACHE/runc-$RUNC_VERSION/libseccomp multiarch
	deb "$LIBSECCOMP_PACKAGE" "$sc" || return 1
	multiarch=$(dirname "$(find "$sc/root" -name libseccomp.a)")
	# Only the archive: the linker then takes it over the shared library.
	rm -f "$multiarch"/libseccomp.so*
	sed -i "s#^prefix=.*#prefix=$sc/root/usr#" "$multiarch/pkgconfig/libseccomp.pc"
	CGO_ENABLED=1 PKG_CONFIG_PATH=$multiarch/pkgconfig GOFLAGS=-tags=seccomp go_install "$@"
}
reuse "runc $RUNC_VERSION" "$RUNC" have "libseccomp" "$RUNC" --version ||
	measure "runc $RUNC_VERSION" "$RUNC" runc_install "$RUNC" \
		"github.com/opencontainers/runc@v$RUNC_VERSION" "-s -w"

# cni_current BIN: a CNI plugin run without CNI_COMMAND names its version on stderr.
cni_current() { [[ -x $1 && $(env -u CNI_COMMAND "$1" </dev/null 2>&1) == *"v$CNI_PLUGINS_VERSION"* ]]; }
CNI=github.com/containernetworking/plugins
for plugin in main/bridge ipam/host-local main/loopback meta/portmap; do
	out=$CNI_BIN_DIR/${plugin#*/}
	reuse "${plugin#*/} $CNI_PLUGINS_VERSION" "$out" cni_current "$out" ||
		measure "CNI ${plugin#*/} $CNI_PLUGINS_VERSION" "$out" go_install "$out" \
			"$CNI/plugins/$plugin@v$CNI_PLUGINS_VERSION" \
			"-s -w -X $CNI/pkg/utils/buildversion.BuildVersion=v$CNI_PLUGINS_VERSION"
done

# --- image roots: what the bed pushes with crane as the pause and busybox images ---------
# pause: test/tools/pause, static, at /pause. busybox: the Debian package's binary at
# /bin/busybox with a link per applet the scenarios use.
pause_root() {
	mkdir -p "$1.tmp"
	(cd "$PAUSE_SRC" && go build -trimpath -ldflags="-s -w" -o "$1.tmp/pause" .)
}
busybox_root() {
	local work=$1.work
	deb "$BUSYBOX_PACKAGE" "$work" || return 1
	mkdir -p "$1.tmp/bin"
	cp "$work/root/bin/busybox" "$1.tmp/bin/busybox"
	for applet in sh cat ls sleep echo test true wc grep; do ln -s busybox "$1.tmp/bin/$applet"; done
	basename "$work"/*.deb >"$1.tmp/PACKAGE"
	rm -rf "$work"
}
# image NAME BUILD_FN: a root directory built once; `mv` of the directory makes it appear whole.
image() {
	local root=$IMAGES_DIR/$1 t0
	if [[ -f $root/.done ]]; then
		log "$1 image root: reusing $root"
		return
	fi
	$CHECK_ONLY && { log "$1 image root is missing at $root: run $REBUILD_HINT"; exit 3; }
	t0=$(clock)
	rm -rf "$root" "$root.tmp"
	"$2" "$root" || die "building the $1 image root failed (see above)"
	touch "$root.tmp/.done"
	mv "$root.tmp" "$root"
	log "built the $1 image root in $(since "$t0")"
}
mkdir -p "$IMAGES_DIR"
image pause pause_root
image busybox busybox_root
log "node runtime ready in $(since "$t_all") (cache: $CACHE)"

printf 'CONTAINERD=%s\nCONTAINERD_SHIM=%s\nCTR=%s\nRUNC=%s\nCNI_BIN_DIR=%s\nPAUSE_ROOT=%s\nBUSYBOX_ROOT=%s\n' \
	"$CONTAINERD_DIR/containerd" "$CONTAINERD_DIR/containerd-shim-runc-v2" "$CONTAINERD_DIR/ctr" \
	"$RUNC" "$CNI_BIN_DIR" "$IMAGES_DIR/pause" "$IMAGES_DIR/busybox"
