#!/usr/bin/env bash
# A real node for a running control plane (test/e2e/control-plane.sh, same DIR): a local
# registry with the node's images, containerd 2 with runc and the CNI plugins, a kubelet
# and kube-scheduler. Pods are scheduled, pulled, started and reported like in a cluster.
#
#   test/e2e/node.sh start    start it, wait until the node is Ready, write DIR/node.json
#   test/e2e/node.sh restart-kubelet   the kubelet again, with IMAGEGATE_E2E_KUBELET_CONFIG
#   test/e2e/node.sh stop     stop it: kubelet and scheduler, every container, containerd,
#                             the registry; unmount what they mounted; keep the logs
#
# Only inside test/e2e/isolate.sh (network, mount and PID namespaces of the bed's own): it
# refuses a network namespace with a route or an interface to anywhere else. There it adds
# the pods' bridge (imagegate0, 10.244.0.1/24, also the node's address); pods get addresses
# from 10.244.0.0/24 and no route at all beyond it. Nothing leaves the namespace.
#
# Files in DIR/node: containerd.toml, kubelet.yaml, the CNI configuration, containerd's
# registry hosts (certs.d/<host>/hosts.toml: a test adds its registry's CA there), the
# logs (containerd, kubelet, kube-scheduler, registry: its access log), pid files.
# DIR/node.json: {nodeName, registry, images: {pause, busybox}, ctr, containerdSocket,
# certsDir, kubeletPolicy, pids}.
#
# Environment:
#   IMAGEGATE_E2E_DIR                   the control plane's directory (as control-plane.sh)
#   IMAGEGATE_E2E_CGROUP_ROOT           the cgroup the pods live under (isolate.sh sets it)
#   IMAGEGATE_E2E_KUBELET_CONFIG        YAML lines appended to the KubeletConfiguration, e.g.
#                                       "imagePullCredentialsVerificationPolicy: AlwaysVerify"
#   KUBELET, KUBE_SCHEDULER, CONTAINERD, CTR, RUNC, CNI_BIN_DIR, PAUSE_ROOT, BUSYBOX_ROOT,
#   REGISTRY, CRANE                     binaries; unset, the build scripts provide them
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${IMAGEGATE_E2E_DIR:-${TMPDIR:-/tmp}/imagegate-e2e-$(id -u)}
NODE_DIR=$DIR/node
START_TIMEOUT=${IMAGEGATE_E2E_START_TIMEOUT:-90}
STOP_TIMEOUT=10
NODE_NAME=imagegate-node # the kubelet's client certificate (control-plane.sh) names it
BRIDGE=imagegate0
NODE_IP=10.244.0.1
POD_SUBNET=10.244.0.0/24

log() { printf 'node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bed-lib.sh
source "$HERE/bed-lib.sh"

# isolated: this network namespace reaches nothing but itself — no default route and no
# interface but loopback and the bed's own. The machines' rule: test traffic only to
# loopback and to addresses inside namespaces the bed creates.
isolated() {
	local name
	[[ -z $(ip route show default) && -z $(ip -6 route show default 2>/dev/null) ]] || return 1
	while read -r name; do
		case ${name%%@*} in lo | "$BRIDGE" | veth*) ;; *) return 1 ;; esac
	done < <(ip -o link show | awk -F': ' '{print $2}')
}

binaries() {
	local k v
	while IFS='=' read -r k v; do
		[[ -n ${!k:-} ]] || printf -v "$k" '%s' "$v"
	done < <(
		"$HERE/build-control-plane.sh" | grep -E '^(KUBELET|KUBE_SCHEDULER|KUBECTL)='
		"$HERE/build-node.sh" --check
		"$HERE/build-registry-tools.sh" --check | grep -E '^(REGISTRY|CRANE)='
	)
	for k in KUBELET KUBE_SCHEDULER KUBECTL CONTAINERD CTR RUNC CNI_BIN_DIR PAUSE_ROOT BUSYBOX_ROOT REGISTRY CRANE; do
		[[ -n ${!k:-} && -e ${!k} ]] || die "$k is missing: ${!k:-unset} (make node-runtime e2e-deps registry-tools)"
	done
}

# network: the bridge the pods' veths join, with the node's address. The CNI bridge plugin
# finds it there (isGateway false: it leaves addresses and forwarding alone).
network() {
	ip link show "$BRIDGE" >/dev/null 2>&1 && return
	ip link add "$BRIDGE" type bridge
	ip addr add "$NODE_IP/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
}

# kernel_defaults: the kubelet wants vm.overcommit_memory=1, kernel.panic=10,
# kernel.panic_on_oops=1 (and more) and writes them when they differ — machine-wide
# settings, on a machine others share. Inside the bed's mount namespace, files holding
# those values are bind-mounted over the sysctl files, so the kubelet (with
# protectKernelDefaults: true, which only checks) reads what it wants and writes nothing.
kernel_defaults() {
	local entry path value dir=$NODE_DIR/sysctl
	mkdir -p "$dir"
	for entry in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
		kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
		path=/proc/sys/${entry%=*}
		value=${entry#*=}
		[[ $(cat "$path") == "$value" ]] && continue
		printf '%s\n' "$value" >"$dir/${path//\//_}"
		mount --bind "$dir/${path//\//_}" "$path"
	done
}

# cgroups: the kubelet's cgroupRoot exists in every hierarchy before it starts.
cgroups() {
	local hierarchy
	for hierarchy in /sys/fs/cgroup/*/; do
		[[ -f $hierarchy/cgroup.procs ]] && mkdir -p "$hierarchy${CGROUP_ROOT#/}"
	done
}

# The bed's registry: plain HTTP on loopback, for the pause and busybox images (and the
# gateway's image); the access log is its log.
registry() {
	local port=$1 reg=$NODE_DIR/registry
	mkdir -p "$reg"
	cat >"$reg/config.yml" <<-EOF
		version: 0.1
		log: {level: info, formatter: text, accesslog: {disabled: false}}
		storage:
		  filesystem: {rootdirectory: $reg/storage}
		  delete: {enabled: true}
		  maintenance: {uploadpurging: {enabled: false}}
		http: {addr: "127.0.0.1:$port", secret: $(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')}
	EOF
	# The registry reads REGISTRY_* variables as configuration: give it none.
	spawn node/registry "$reg" env -i PATH=/usr/bin:/bin "$REGISTRY" serve "$reg/config.yml"
	for ((i = 0; i < 100; i++)); do
		curl -fs -o /dev/null "http://127.0.0.1:$port/v2/" && return
		ours node/registry >/dev/null || { tail -n 20 "$NODE_DIR/registry.log" >&2; die "the registry exited"; }
		sleep 0.1
	done
	die "the registry is not serving after 10s"
}

# push ROOT REFERENCE ARGS...: one layer (ROOT's files, owned by root) on an empty base,
# given a platform and ARGS (crane mutate's --entrypoint, --cmd ...).
push() {
	local root=$1 ref=$2 layer
	shift 2
	layer=$NODE_DIR/$(basename "$root").tar
	tar -C "$root" --exclude=./.done --exclude=./PACKAGE --sort=name --numeric-owner --owner=0 --group=0 \
		--mtime=@0 -cf "$layer" .
	"$CRANE" append --insecure --oci-empty-base -f "$layer" -t "$ref" >>"$NODE_DIR/crane.log" 2>&1
	"$CRANE" mutate --insecure "$ref" --set-platform linux/amd64 "$@" -t "$ref" >>"$NODE_DIR/crane.log" 2>&1
	rm -f "$layer"
}

# hosts HOST SERVER [CA]: containerd's registry configuration for HOST (read at each pull).
hosts() {
	mkdir -p "$NODE_DIR/certs.d/$1"
	{
		printf 'server = "%s"\n\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n' "$2" "$2"
		[[ -z ${3:-} ]] || printf '  ca = "%s"\n' "$3"
	} >"$NODE_DIR/certs.d/$1/hosts.toml"
}

containerd_config() {
	cat >"$NODE_DIR/containerd.toml" <<-EOF
		# written by test/e2e/node.sh
		version = 3
		root = "$NODE_DIR/containerd/root"
		state = "$NODE_DIR/containerd/state"

		[grpc]
		  address = "$NODE_DIR/containerd.sock"
		[ttrpc]
		  address = "$NODE_DIR/containerd.sock.ttrpc"

		[plugins."io.containerd.cri.v1.images"]
		  snapshotter = "overlayfs"
		  [plugins."io.containerd.cri.v1.images".pinned_images]
		    sandbox = "$PAUSE_IMAGE"
		  [plugins."io.containerd.cri.v1.images".registry]
		    config_path = "$NODE_DIR/certs.d"

		[plugins."io.containerd.cri.v1.runtime"]
		  # Network namespace pins in the state dir, not the machine's /var/run/netns.
		  netns_mounts_under_state_dir = true
		  # These machines withhold CAP_SYS_RESOURCE even from root: no process may lower its
		  # oom_score_adj (a pod sandbox's is -998). Containers get at least containerd's.
		  restrict_oom_score_adj = true
		  [plugins."io.containerd.cri.v1.runtime".containerd]
		    default_runtime_name = "runc"
		    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
		        BinaryName = "$RUNC"
		        Root = "$NODE_DIR/runc"
		        # cgroupfs, as the kubelet's cgroupDriver: there is no systemd here.
		        SystemdCgroup = false
		  [plugins."io.containerd.cri.v1.runtime".cni]
		    bin_dirs = ["$CNI_BIN_DIR"]
		    conf_dir = "$NODE_DIR/cni"

		[plugins."io.containerd.grpc.v1.cri"]
		  disable_tcp_service = true
		  stream_server_address = "127.0.0.1"
		  stream_server_port = "0"
	EOF
	mkdir -p "$NODE_DIR/cni"
	# bridge (no gateway, no masquerade: pods reach the bridge's subnet and nothing else),
	# host-local addresses, portmap for hostPorts; containerd adds loopback itself.
	cat >"$NODE_DIR/cni/10-imagegate-bed.conflist" <<-EOF
		{
		  "cniVersion": "1.0.0",
		  "name": "imagegate-bed",
		  "plugins": [
		    {
		      "type": "bridge",
		      "bridge": "$BRIDGE",
		      "isGateway": false,
		      "ipMasq": false,
		      "ipam": {
		        "type": "host-local",
		        "ranges": [[{"subnet": "$POD_SUBNET", "rangeStart": "10.244.0.10", "gateway": "$NODE_IP"}]],
		        "routes": [],
		        "dataDir": "$NODE_DIR/cni-ipam"
		      }
		    },
		    {"type": "portmap", "capabilities": {"portMappings": true}}
		  ]
		}
	EOF
}

# kubelet_config: kubelet.base.yaml (what every run shares) and kubelet.yaml, the base
# plus IMAGEGATE_E2E_KUBELET_CONFIG (what restart-kubelet changes).
kubelet_config() {
	cat >"$NODE_DIR/kubelet.base.yaml" <<-EOF
		# written by test/e2e/node.sh
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		# These machines mount cgroup v1 (v2 only as a secondary "unified" hierarchy). From
		# Kubernetes 1.35 the kubelet refuses to start there unless told otherwise; minikube
		# and k0s set the same. Remove when the machines move to cgroup v2.
		failCgroupV1: false
		cgroupDriver: cgroupfs
		cgroupRoot: $CGROUP_ROOT
		containerRuntimeEndpoint: unix://$NODE_DIR/containerd.sock
		address: $NODE_IP
		port: $KUBELET_PORT
		readOnlyPort: 0
		healthzBindAddress: 127.0.0.1
		healthzPort: $HEALTHZ_PORT
		podLogsDir: $NODE_DIR/pod-logs
		# Only the API server (its kubelet client certificate) may call the kubelet.
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: false}
		  x509: {clientCAFile: $DIR/pki/ca.crt}
		authorization: {mode: AlwaysAllow}
		# Check, never write, the kernel settings (see kernel_defaults in node.sh).
		protectKernelDefaults: true
		# No cluster DNS, and not the machine's resolver.
		resolvConf: ""
		failSwapOn: false
		# Not -999: lowering it needs CAP_SYS_RESOURCE, which these machines withhold.
		oomScoreAdj: 0
		serializeImagePulls: false
		# The scenarios decide which images go: no garbage collection, no eviction on a busy disk.
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
		# Pod status sooner than the defaults (a test waits on it).
		syncFrequency: 10s
		nodeStatusUpdateFrequency: 4s
		maxPods: 60
	EOF
	kubelet_extra
}
kubelet_extra() {
	{
		cat "$NODE_DIR/kubelet.base.yaml"
		[[ -z ${IMAGEGATE_E2E_KUBELET_CONFIG:-} ]] || printf '%s\n' "$IMAGEGATE_E2E_KUBELET_CONFIG"
	} >"$NODE_DIR/kubelet.yaml"
}

spawn_kubelet() {
	spawn node/kubelet "$NODE_DIR" "$KUBELET" --config="$NODE_DIR/kubelet.yaml" \
		--kubeconfig="$DIR/kubelet.kubeconfig" --root-dir="$NODE_DIR/kubelet" \
		--hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
}

# restart_kubelet: the same node with IMAGEGATE_E2E_KUBELET_CONFIG's settings; what the
# kubelet keeps on disk (its image pull records) stays. Ready when its healthz answers.
restart_kubelet() {
	local port deadline=$((SECONDS + START_TIMEOUT))
	ours node/kubelet >/dev/null || die "no kubelet running in $DIR"
	KUBELET=$(sed -n 's/.*"kubeletBinary": "\([^"]*\)".*/\1/p' "$DIR/node.json")
	port=$(sed -n 's/^healthzPort: //p' "$NODE_DIR/kubelet.base.yaml")
	stop_group kubelet
	kubelet_extra
	spawn_kubelet
	until curl -fs -o /dev/null "http://127.0.0.1:$port/healthz"; do
		ours node/kubelet >/dev/null || { tail -n 30 "$NODE_DIR/kubelet.log" >&2; die "the kubelet exited"; }
		((SECONDS < deadline)) || die "the kubelet's healthz not answering after ${START_TIMEOUT}s"
		sleep 0.2
	done
	sed -i "s/\"kubelet\": [0-9][0-9]*/\"kubelet\": $(cat "$NODE_DIR/kubelet.pid")/" "$DIR/node.json"
	log "kubelet restarted${IMAGEGATE_E2E_KUBELET_CONFIG:+ with: $IMAGEGATE_E2E_KUBELET_CONFIG}"
}

wait_ready() {
	local deadline=$((SECONDS + START_TIMEOUT)) name
	until [[ $("$KUBECTL" --kubeconfig="$DIR/kubeconfig" get node "$NODE_NAME" --request-timeout=2s \
		-o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; do
		for name in containerd kubelet kube-scheduler; do
			ours "node/$name" >/dev/null || { tail -n 30 "$NODE_DIR/$name.log" >&2; die "$name exited"; }
		done
		((SECONDS < deadline)) || { tail -n 30 "$NODE_DIR/kubelet.log" >&2; die "node not Ready after ${START_TIMEOUT}s"; }
		sleep 0.5
	done
}

start() {
	local t0 reg_port
	t0=$(clock)
	((EUID == 0)) || die "needs root (containerd, runc, the kubelet)"
	isolated || die "this network namespace reaches other networks; run the bed inside test/e2e/isolate.sh"
	[[ -f $DIR/control-plane.json ]] || die "no control plane in $DIR (control-plane.sh start)"
	[[ -n ${IMAGEGATE_E2E_CGROUP_ROOT:-} ]] || die "IMAGEGATE_E2E_CGROUP_ROOT is unset (isolate.sh sets it)"
	CGROUP_ROOT=$IMAGEGATE_E2E_CGROUP_ROOT
	ours node/kubelet >/dev/null && die "a node is already running in $DIR; run '$0 stop' first"
	binaries
	rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
	trap 'if (($?)); then stop_all; log "start failed; logs in $NODE_DIR"; fi' EXIT
	trap 'exit 130' INT TERM

	network
	kernel_defaults
	cgroups
	# containerd's shims put their sockets in /run/containerd/s, fixed in containerd's code:
	# a tmpfs of the bed's mount namespace keeps them off the machine's /run.
	mkdir -p /run/containerd
	mountpoint -q /run/containerd || mount -t tmpfs -o mode=0711 tmpfs /run/containerd

	read -r reg_port KUBELET_PORT HEALTHZ_PORT <<<"$(free_ports 3)"
	registry "$reg_port"
	REGISTRY_HOST=127.0.0.1:$reg_port
	PAUSE_IMAGE=$REGISTRY_HOST/imagegate-bed/pause:1
	BUSYBOX_IMAGE=$REGISTRY_HOST/imagegate-bed/busybox:$(sed -n 's/^busybox-static_[0-9]*%3a\([^_+-]*\).*/\1/p' "$BUSYBOX_ROOT/PACKAGE")
	push "$PAUSE_ROOT" "$PAUSE_IMAGE" --entrypoint=/pause
	push "$BUSYBOX_ROOT" "$BUSYBOX_IMAGE" --cmd=sh
	hosts "$REGISTRY_HOST" "http://$REGISTRY_HOST"

	containerd_config
	spawn node/containerd "$NODE_DIR" "$CONTAINERD" --config "$NODE_DIR/containerd.toml"
	for ((i = 0; ; i++)); do
		"$CTR" --address "$NODE_DIR/containerd.sock" version >/dev/null 2>&1 && break
		ours node/containerd >/dev/null || { tail -n 30 "$NODE_DIR/containerd.log" >&2; die "containerd exited"; }
		((i < 300)) || die "containerd not answering after 30s"
		sleep 0.1
	done

	kubelet_config
	spawn_kubelet
	# No HTTPS port (nothing scrapes it), no leader election: one scheduler.
	spawn node/kube-scheduler "$DIR" "$KUBE_SCHEDULER" --kubeconfig="$DIR/scheduler.kubeconfig" \
		--leader-elect=false --secure-port=0
	wait_ready

	cat >"$DIR/node.json" <<-EOF
		{
		  "nodeName": "$NODE_NAME",
		  "nodeIP": "$NODE_IP",
		  "registry": "$REGISTRY_HOST",
		  "images": { "pause": "$PAUSE_IMAGE", "busybox": "$BUSYBOX_IMAGE" },
		  "kubeletBinary": "$KUBELET",
		  "ctr": "$CTR",
		  "crane": "$CRANE",
		  "containerdSocket": "$NODE_DIR/containerd.sock",
		  "certsDir": "$NODE_DIR/certs.d",
		  "dir": "$NODE_DIR",
		  "pids": { "containerd": $(cat "$DIR/node/containerd.pid"), "kubelet": $(cat "$DIR/node/kubelet.pid"), "kubeScheduler": $(cat "$DIR/node/kube-scheduler.pid"), "registry": $(cat "$DIR/node/registry.pid") }
		}
	EOF
	trap - EXIT INT TERM
	log "node $NODE_NAME Ready in $(since "$t0") (registry $REGISTRY_HOST, logs in $NODE_DIR)"
}

# stop_all: the kubelet and the scheduler first (nothing restarts a container then), every
# container through containerd, containerd, the registry; then what they mounted. TERM,
# and KILL what is left after STOP_TIMEOUT seconds.
stop_group() {
	local name pid pids=() i
	for name; do
		if pid=$(ours "node/$name"); then
			kill -TERM -- "-$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		any_alive ${pids[@]+"${pids[@]}"} || break
		sleep 0.1
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill -0 -- "-$pid" 2>/dev/null && { log "process group $pid ignored TERM; killing it"; kill -KILL -- "-$pid" 2>/dev/null; }
	done
	for name; do rm -f "$DIR/node/$name.pid"; done
}
stop_all() {
	local ctr=("${CTR:-$(sed -n 's/^CTR=//p' < <("$HERE/build-node.sh" --check 2>/dev/null))}" --address "$NODE_DIR/containerd.sock" -n k8s.io) task mnt
	[[ -d $NODE_DIR ]] || return 0
	stop_group kubelet kube-scheduler
	if ours node/containerd >/dev/null && [[ -x ${ctr[0]} ]]; then
		for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
			"${ctr[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
		done
		for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
			"${ctr[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true
		done
	fi
	stop_group containerd registry
	# Deepest first: pod volumes, overlays, network namespace pins, the sysctl binds.
	while read -r mnt; do
		umount -l "$mnt" 2>/dev/null || true
	done < <(findmnt -rn -o TARGET | grep -E "^($NODE_DIR/|/proc/sys/|/run/containerd$)" | sort -r)
	rm -f "$DIR/node.json"
}

case ${1:-} in
start) start ;;
restart-kubelet) restart_kubelet ;;
stop)
	stop_all
	log "stopped (logs kept in $NODE_DIR)"
	;;
*)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
