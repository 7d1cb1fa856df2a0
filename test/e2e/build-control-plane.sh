#!/usr/bin/env bash
# Build (or reuse) the control plane the end-to-end tests run against — kube-apiserver,
# kube-controller-manager, kubectl and etcd, and the node's kube-scheduler and kubelet — from the Go module proxy alone: no Docker,
# no release tarballs, no system packages. Binaries go to a cache outside the repo, keyed
# by version:
#
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/k8s-<version>/{kube-apiserver,kube-controller-manager,kubectl,
#                                                          kube-scheduler,kubelet}
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/etcd-<version>/etcd
#
#   build-control-plane.sh             the default Kubernetes version (the newest supported)
#   IMAGEGATE_K8S_VERSION=1.35.4 ...   another one of K8S_VERSIONS
#   build-control-plane.sh --versions  print K8S_VERSIONS (for the Makefile and CI)
#
# A warm run only checks the binaries' versions (well under a second). On stdout it prints
# KUBE_APISERVER=, KUBE_CONTROLLER_MANAGER=, KUBECTL=, KUBE_SCHEDULER=, KUBELET=, ETCD=,
# CERT_MANAGER_CRDS=, MONITORING_CRDS= lines;
# progress and timings go to stderr. Building needs Go >= 1.26 (the go line of Kubernetes
# 1.37). Built and tested with Go 1.26.
set -euo pipefail

# Versions: the only place they are written down.
# Kubernetes: the supported minors at both ends (December 2026: 1.35, 1.36, 1.37 are
# supported upstream), newest first: the first is the default, CI runs every one. Each is
# the newest patch of its minor the Go module proxy serves. etcd: one server for both;
# 3.6 is what kubeadm deploys for these minors, and the API servers speak its v3 API.
K8S_VERSIONS="1.37.2 1.35.4"
ETCD_VERSION=3.6.4
# cert-manager's CRDs, so the cert-manager overlay and chart values pass a server-side dry
# run: its Go module carries deploy/crds, so the module proxy serves them.
CERT_MANAGER_VERSION=1.21.2
# prometheus-operator's CRDs (PodMonitor, PrometheusRule) for the dry runs of deploy/'s
# monitoring objects: from its Go module, as cert-manager's.
PROMETHEUS_OPERATOR_VERSION=0.85.0

if [[ ${1:-} == --versions ]]; then
	echo "$K8S_VERSIONS"
	exit 0
fi
K8S_VERSION=${IMAGEGATE_K8S_VERSION:-${K8S_VERSIONS%% *}}
[[ " $K8S_VERSIONS " == *" $K8S_VERSION "* ]] ||
	{ printf 'e2e-deps: error: IMAGEGATE_K8S_VERSION=%s is not one of: %s\n' "$K8S_VERSION" "$K8S_VERSIONS" >&2; exit 2; }

log() { printf 'e2e-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
GO_NEEDED=1.24
# shellcheck source=build-lib.sh
source "$(dirname "$0")/build-lib.sh"
K8S_DIR=$CACHE/k8s-$K8S_VERSION
ETCD_DIR=$CACHE/etcd-$ETCD_VERSION
KUBE_APISERVER=$K8S_DIR/kube-apiserver
KUBE_CONTROLLER_MANAGER=$K8S_DIR/kube-controller-manager
KUBECTL=$K8S_DIR/kubectl
KUBE_SCHEDULER=$K8S_DIR/kube-scheduler
KUBELET=$K8S_DIR/kubelet
ETCD=$ETCD_DIR/etcd

# info_field FILE KEY: a string field of a proxy .info file (one-line JSON, spacing varies).
info_field() { sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$1" | head -n1; }

export CGO_ENABLED=0
mkdir -p "$K8S_DIR" "$ETCD_DIR"
lock_cache

# in_wrapper WRAPPER_FN PACKAGE TAGS OUTPUT: make the wrapper module (WRAPPER_FN prints its
# directory) and go build PACKAGE in it into OUTPUT.tmp (measure renames it).
in_wrapper() {
	local w
	w=$("$1") || return 1
	(cd "$w" && go build -mod=mod -trimpath -tags="$3" -ldflags="$(cat ldflags)" -o "$4.tmp" "$2")
}
# build NAME OUTPUT WRAPPER_FN PACKAGE TAGS
build() { measure "$1 ($4)" "$2" in_wrapper "$3" "$4" "$5" "$2"; }

# --- etcd -----------------------------------------------------------------------------
# go.etcd.io/etcd/server/v3 is the etcd binary (its main.go), but its go.mod replaces the
# sibling modules with ../ paths, so `go install …@version` refuses it. A wrapper module
# requires the same released versions of those siblings instead.
etcd_wrapper() {
	local w=$ETCD_DIR/wrapper json gomod goline hash siblings
	if [[ -f $w/ldflags ]] && grep -q "go.etcd.io/etcd/server/v3 v$ETCD_VERSION\$" "$w/go.mod"; then
		echo "$w"
		return
	fi
	rm -rf "$w" "$w.tmp" && mkdir -p "$w.tmp"
	json=$(cd "$w.tmp" && download "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
	gomod=$(json_field GoMod <<<"$json")
	[[ -f $gomod ]] || die "no go.mod for go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
	goline=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
	siblings=$(sed -n 's#^[[:space:]]*\(go\.etcd\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\./.*#\1#p' "$gomod")
	[[ -n $siblings ]] || die "found no ../ replaces in $gomod; has etcd's layout changed?"
	{
		printf 'module imagegate.local/etcd-wrapper\n\ngo %s\n\nrequire (\n' "$goline"
		printf '\tgo.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION"
		for m in $siblings; do printf '\t%s v%s\n' "$m" "$ETCD_VERSION"; done
		printf ')\n'
	} >"$w.tmp/go.mod"
	# The proxy's .info may lack the commit; etcd --version then says "Git SHA: Not provided".
	hash=$(info_field "$(json_field Info <<<"$json")" Hash)
	printf '%s\n' "-s -w${hash:+ -X go.etcd.io/etcd/api/v3/version.GitSHA=${hash:0:9}}" >"$w.tmp/ldflags"
	mv "$w.tmp" "$w"
	echo "$w"
}

t_all=$(clock)
if have "etcd Version: $ETCD_VERSION" "$ETCD" --version; then
	log "etcd $ETCD_VERSION: reusing $ETCD"
else
	build "etcd $ETCD_VERSION" "$ETCD" etcd_wrapper go.etcd.io/etcd/server/v3 ""
fi

# --- kube-apiserver, kube-controller-manager, kubectl ---------------------------------------
# k8s.io/kubernetes replaces every k8s.io/<staging> module with ./staging/src/k8s.io/<name>
# and requires them at v0.0.0, so it can't be `go install`ed. The wrapper replaces each with
# its published v0.<minor>.<patch>, the list read from the upstream go.mod itself.
# Build flags follow upstream's hack/lib/golang.sh: static, -trimpath, -s -w, version ldflags.
k8s_wrapper() {
	local w=$K8S_DIR/wrapper json gomod goline staging info hash time minor
	if [[ -f $w/ldflags ]] && grep -q "k8s.io/kubernetes v$K8S_VERSION\$" "$w/go.mod"; then
		echo "$w"
		return
	fi
	rm -rf "$w" "$w.tmp" && mkdir -p "$w.tmp"
	json=$(cd "$w.tmp" && download "k8s.io/kubernetes@v$K8S_VERSION")
	gomod=$(json_field GoMod <<<"$json")
	[[ -f $gomod ]] || die "no go.mod for k8s.io/kubernetes@v$K8S_VERSION"
	goline=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
	staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")
	[[ -n $staging ]] || die "found no ./staging replaces in $gomod"
	{
		printf 'module imagegate.local/k8s-wrapper\n\ngo %s\n\n' "$goline"
		# Upstream's godebug defaults apply only to its own main module; keep its behaviour.
		grep '^godebug ' "$gomod" || true
		printf '\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S_VERSION"
		for m in $staging; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${K8S_VERSION#1.}"; done
		printf ')\n'
	} >"$w.tmp/go.mod"
	info=$(json_field Info <<<"$json")
	hash=$(info_field "$info" Hash)
	time=$(info_field "$info" Time)
	minor=${K8S_VERSION#1.}
	minor=${minor%%.*}
	local v k ld=""
	# kube::version::ldflags: the same variables in client-go's and component-base's version.
	for v in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
		for k in "gitVersion=v$K8S_VERSION" gitMajor=1 "gitMinor=$minor" ${hash:+"gitCommit=$hash"} \
			gitTreeState=clean ${time:+"buildDate=$time"}; do
			ld+=" -X $v.$k"
		done
	done
	printf '%s\n' "-s -w$ld" >"$w.tmp/ldflags"
	mv "$w.tmp" "$w"
	echo "$w"
}

K8S_TAGS=selinux,notest,grpcnotrace
if have "Kubernetes v$K8S_VERSION" "$KUBE_APISERVER" --version; then
	log "kube-apiserver $K8S_VERSION: reusing $KUBE_APISERVER"
else
	build "kube-apiserver $K8S_VERSION" "$KUBE_APISERVER" k8s_wrapper \
		k8s.io/kubernetes/cmd/kube-apiserver "$K8S_TAGS"
fi
if have "Kubernetes v$K8S_VERSION" "$KUBE_CONTROLLER_MANAGER" --version; then
	log "kube-controller-manager $K8S_VERSION: reusing $KUBE_CONTROLLER_MANAGER"
else
	build "kube-controller-manager $K8S_VERSION" "$KUBE_CONTROLLER_MANAGER" k8s_wrapper \
		k8s.io/kubernetes/cmd/kube-controller-manager "$K8S_TAGS"
fi
if have "Client Version: v$K8S_VERSION" "$KUBECTL" version --client; then
	log "kubectl $K8S_VERSION: reusing $KUBECTL"
else
	build "kubectl $K8S_VERSION" "$KUBECTL" k8s_wrapper k8s.io/kubernetes/cmd/kubectl "$K8S_TAGS"
fi
# The node (test/e2e/node.sh): the same wrapper, flags and version. The kubelet builds
# without cgo, as kube-scheduler does.
if have "Kubernetes v$K8S_VERSION" "$KUBE_SCHEDULER" --version; then
	log "kube-scheduler $K8S_VERSION: reusing $KUBE_SCHEDULER"
else
	build "kube-scheduler $K8S_VERSION" "$KUBE_SCHEDULER" k8s_wrapper k8s.io/kubernetes/cmd/kube-scheduler "$K8S_TAGS"
fi
if have "Kubernetes v$K8S_VERSION" "$KUBELET" --version; then
	log "kubelet $K8S_VERSION: reusing $KUBELET"
else
	build "kubelet $K8S_VERSION" "$KUBELET" k8s_wrapper k8s.io/kubernetes/cmd/kubelet "$K8S_TAGS"
fi
crds=$(download "github.com/cert-manager/cert-manager@v$CERT_MANAGER_VERSION" | json_field Dir)/deploy/crds
[[ -f $crds/cert-manager.io_certificates.yaml ]] || die "no cert-manager CRDs in $crds"
monitoring_crds=$(download "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION" | json_field Dir)/example/prometheus-operator-crd
[[ -f $monitoring_crds/monitoring.coreos.com_prometheusrules.yaml ]] || die "no prometheus-operator CRDs in $monitoring_crds"
log "control plane ready in $(since "$t_all") (cache: $CACHE)"

printf 'KUBE_APISERVER=%s\nKUBE_CONTROLLER_MANAGER=%s\nKUBECTL=%s\nKUBE_SCHEDULER=%s\nKUBELET=%s\nETCD=%s\nCERT_MANAGER_CRDS=%s\nMONITORING_CRDS=%s\n' \
	"$KUBE_APISERVER" "$KUBE_CONTROLLER_MANAGER" "$KUBECTL" "$KUBE_SCHEDULER" "$KUBELET" "$ETCD" "$crds" "$monitoring_crds"
