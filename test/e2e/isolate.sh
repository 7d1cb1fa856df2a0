#!/usr/bin/env bash
# Runs a command in network, mount and PID namespaces of its own, so that everything the
# test bed starts — control planes, registries, containerd, the kubelet, pods — lives and
# dies inside them:
#
#   test/e2e/isolate.sh CMD [ARGS...]
#
# - network: only a loopback interface (up), and whatever the bed adds (the pods' bridge,
#   their veths). There is no route out of it, so nothing a pod or a test does can reach
#   another address than its own, whatever a CNI plugin or a kubelet configures.
# - mount: what containerd, runc and the kubelet mount (overlays, tmpfs volumes, network
#   namespace pins) is never seen by the machine, and goes away with the namespace.
# - PID: the command runs under a bash that is PID 1 there; when it exits, the kernel kills
#   every process left in the namespace — a shim, a container — so no run leaves one behind.
#
# The command's exit code is ours. IMAGEGATE_E2E_CGROUP_ROOT (exported) names the cgroup
# the kubelet may create pods under; the cgroup directories the run leaves are removed.
# Needs root (namespaces, and for the node, mounts and cgroups); the unshare from util-linux.
set -euo pipefail

log() { printf 'isolate: %s\n' "$*" >&2; }

if [[ ${1:-} == __pid1 ]]; then
	shift
	ip link set lo up
	# PID 1 ignores signals it has no handler for: pass TERM and INT on to the command.
	"$@" &
	child=$!
	trap 'kill -TERM "$child" 2>/dev/null' TERM INT
	rc=0
	wait "$child" || rc=$?
	# A trapped signal interrupts wait: wait again for the command's own exit code.
	while kill -0 "$child" 2>/dev/null; do wait "$child" || rc=$?; done
	exit "$rc"
fi

(($#)) || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
((EUID == 0)) || { log "needs root (network, mount and PID namespaces)"; exit 1; }
command -v unshare >/dev/null || { log "unshare (util-linux) is needed"; exit 1; }
command -v ip >/dev/null || { log "ip (iproute2) is needed"; exit 1; }

# One cgroup per run, named after this process: two runs on one machine never share pods.
export IMAGEGATE_E2E_CGROUP_ROOT=${IMAGEGATE_E2E_CGROUP_ROOT:-/imagegate-e2e-$$}

# remove_cgroups: every directory of our cgroup root in every v1 hierarchy (and the unified
# one), deepest first; they are empty once the PID namespace is gone.
remove_cgroups() {
	local hierarchy
	for hierarchy in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[[ -d $hierarchy${IMAGEGATE_E2E_CGROUP_ROOT#/} ]] || continue
		find "$hierarchy${IMAGEGATE_E2E_CGROUP_ROOT#/}" -depth -type d -exec rmdir {} + 2>/dev/null ||
			log "could not remove every cgroup under $hierarchy${IMAGEGATE_E2E_CGROUP_ROOT#/}"
	done
}

rc=0
unshare --net --mount --propagation private --pid --fork --mount-proc --kill-child \
	-- bash "$0" __pid1 "$@" || rc=$?
remove_cgroups
exit "$rc"
