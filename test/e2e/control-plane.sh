#!/usr/bin/env bash
# A real control plane for the end-to-end tests: etcd, kube-apiserver and
# kube-controller-manager on loopback (pods are created by the controllers as in a
# cluster, through the admission webhooks; without test/e2e/node.sh they stay Pending).
#
#   test/e2e/control-plane.sh start           start, wait for /readyz, write the files below
#   test/e2e/control-plane.sh stop            stop it: TERM each process group, KILL after 10 s
#   test/e2e/control-plane.sh env             print DIR/env (eval "$(test/e2e/control-plane.sh env)")
#   test/e2e/control-plane.sh run -- CMD...   start, run CMD with DIR/env exported, stop (always)
#   test/e2e/control-plane.sh apiserver-stop  stop kube-apiserver alone (etcd and the rest go on)
#   test/e2e/control-plane.sh apiserver-start start it again, same port and flags; wait for /readyz
#
# Files in DIR (IMAGEGATE_E2E_DIR, default ${TMPDIR:-/tmp}/imagegate-e2e-<uid>):
#   kubeconfig          admin (group system:masters), client cert and CA by path
#   env                 shell: KUBECONFIG, IMAGEGATE_E2E_{APISERVER,KUBECTL,CA,DIR,ETCD}, and
#                       PATH with the pinned kubectl first (never a preinstalled one)
#   control-plane.json  the same for Node: {apiserver, kubeconfig, kubectl, ca, clientCert, ...}
#   *.log, *.pid        etcd, kube-apiserver, kube-controller-manager, watchdog
#
# Environment:
#   IMAGEGATE_E2E_ADMISSION_CONFIG  an AdmissionConfiguration file; enables ImagePolicyWebhook
#   IMAGEGATE_E2E_APISERVER_ARGS    extra kube-apiserver flags (split on whitespace)
#   IMAGEGATE_E2E_CONTROLLERS       0: no kube-controller-manager (default 1)
#   IMAGEGATE_K8S_VERSION           which of build-control-plane.sh's versions (default: newest)
#   IMAGEGATE_E2E_OWNER_PID         stop the control plane when this process is gone
#   IMAGEGATE_E2E_TTL               ... and in any case after this many seconds (default 3600)
#   IMAGEGATE_E2E_START_TIMEOUT     seconds to wait for /readyz (default 90)
#   KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, ETCD, KUBECTL
#                                   binaries to use; unset, build-control-plane.sh provides them
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${IMAGEGATE_E2E_DIR:-${TMPDIR:-/tmp}/imagegate-e2e-$(id -u)}
TTL=${IMAGEGATE_E2E_TTL:-3600}
START_TIMEOUT=${IMAGEGATE_E2E_START_TIMEOUT:-90}
STOP_TIMEOUT=10

log() { printf 'control-plane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bed-lib.sh
source "$HERE/bed-lib.sh"

# stop_all [keep-watchdog]: TERM every process group we started at once (a throwaway
# cluster needs no orderly shutdown: ~3 s instead of ~6 s), KILL what is left after
# STOP_TIMEOUT seconds, remove the etcd data and the files that say "running".
stop_all() {
	local names=(kube-controller-manager kube-apiserver etcd) name pid pids=() i
	[[ ${1:-} == keep-watchdog ]] || names=(watchdog "${names[@]}")
	# A node (node.sh) depends on this control plane: it goes first.
	[[ ! -d $DIR/node ]] || bash "$HERE/node.sh" stop || true
	for name in "${names[@]}"; do
		if pid=$(ours "$name"); then
			kill -TERM -- "-$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
		rm -f "$DIR/$name.pid"
	done
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		any_alive ${pids[@]+"${pids[@]}"} || break
		sleep 0.1
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		if kill -0 -- "-$pid" 2>/dev/null; then
			log "process group $pid ignored TERM for ${STOP_TIMEOUT}s; killing it"
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$DIR/etcd-data" "$DIR/env" "$DIR/control-plane.json"
}

etcd_healthy() {
	# HTTP/1.0 over bash's /dev/tcp: no curl needed.
	local reply
	reply=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET /health HTTP/1.0\r\n\r\n' >&3
		timeout 2 cat <&3
	) || return 1
	[[ $reply == *'"health":"true"'* ]]
}

certs() {
	local pki=$DIR/pki
	mkdir -p "$pki"
	cat >"$pki/openssl.cnf" <<-'EOF'
		[req]
		distinguished_name = dn
		prompt = no
		[dn]
		CN = unused
		[ca]
		basicConstraints = critical,CA:TRUE
		keyUsage = critical,keyCertSign,cRLSign
		subjectKeyIdentifier = hash
		[serving]
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature
		extendedKeyUsage = serverAuth
		subjectAltName = IP:127.0.0.1,DNS:localhost
		[client]
		basicConstraints = critical,CA:FALSE
		keyUsage = critical,digitalSignature
		extendedKeyUsage = clientAuth
	EOF
	key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null; }
	# sign NAME SUBJECT EXTENSIONS: a leaf certificate signed by the CA, valid for a week.
	sign() {
		key "$1"
		openssl req -new -config "$pki/openssl.cnf" -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
		openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
			-set_serial "0x$(openssl rand -hex 8)" -days 7 -sha256 \
			-extfile "$pki/openssl.cnf" -extensions "$3" -out "$pki/$1.crt" 2>/dev/null
		rm -f "$pki/$1.csr"
	}
	key ca
	openssl req -x509 -new -config "$pki/openssl.cnf" -extensions ca -key "$pki/ca.key" \
		-subj "/CN=imagegate-e2e-ca" -days 7 -sha256 -out "$pki/ca.crt"
	sign apiserver "/CN=kube-apiserver" serving
	sign admin "/O=system:masters/CN=imagegate-e2e-admin" client
	# The identity kubeadm gives the controller manager; the API server's bootstrap RBAC
	# lets it mint a token for each controller's own service account.
	sign controller-manager "/CN=system:kube-controller-manager" client
	# The node's (test/e2e/node.sh): the scheduler's bootstrap identity, and the kubelet's,
	# which the Node authorizer limits to its own node and the pods bound to it.
	sign scheduler "/CN=system:kube-scheduler" client
	sign kubelet "/O=system:nodes/CN=system:node:imagegate-node" client
	key service-account
	openssl pkey -in "$pki/service-account.key" -pubout -out "$pki/service-account.pub"
}

# kubeconfig FILE PORT USER: a kubeconfig for the client certificate pki/USER.{crt,key}.
kubeconfig() {
	cat >"$1" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: imagegate-e2e
		  cluster:
		    server: https://127.0.0.1:$2
		    certificate-authority: $DIR/pki/ca.crt
		users:
		- name: $3
		  user:
		    client-certificate: $DIR/pki/$3.crt
		    client-key: $DIR/pki/$3.key
		contexts:
		- name: imagegate-e2e
		  context: {cluster: imagegate-e2e, user: $3}
		current-context: imagegate-e2e
	EOF
	chmod 600 "$1"
}

binaries() {
	local k v
	if [[ -z ${KUBE_APISERVER:-} || -z ${KUBE_CONTROLLER_MANAGER:-} || -z ${ETCD:-} || -z ${KUBECTL:-} ]]; then
		while IFS='=' read -r k v; do
			case $k in KUBE_APISERVER | KUBE_CONTROLLER_MANAGER | ETCD | KUBECTL)
				[[ -n ${!k:-} ]] || printf -v "$k" '%s' "$v"
				;;
			esac
		done < <("$HERE/build-control-plane.sh")
	fi
	for k in KUBE_APISERVER KUBE_CONTROLLER_MANAGER ETCD KUBECTL; do
		[[ -x ${!k:-} ]] || die "$k is not an executable: ${!k:-unset}"
	done
}

start() {
	local t0 etcd_port peer_port api_port i args=()
	t0=$(clock)
	command -v openssl >/dev/null || die "openssl is needed (Debian/Ubuntu: apt-get install openssl)"
	command -v node >/dev/null || die "node is needed"
	binaries
	if ours etcd >/dev/null || ours kube-apiserver >/dev/null || ours kube-controller-manager >/dev/null; then
		die "a control plane is already running in $DIR; run '$0 stop' first"
	fi
	[[ $DIR != *[[:space:]]* ]] || die "IMAGEGATE_E2E_DIR must not contain whitespace: $DIR"
	# Wipe the previous run, but never a directory this script did not make.
	if [[ -d $DIR && -n $(ls -A "$DIR") && ! -f $DIR/.imagegate-e2e ]]; then
		die "$DIR is not empty and was not made by $0; choose another IMAGEGATE_E2E_DIR"
	fi
	rm -rf "$DIR"
	mkdir -p "$DIR"
	chmod 700 "$DIR"
	touch "$DIR/.imagegate-e2e"
	# From here on a failure (set -e, die, ^C) must not leave half a control plane behind.
	trap 'if (($?)); then stop_all; log "start failed; logs in $DIR"; fi' EXIT
	trap 'exit 130' INT TERM
	certs
	read -r etcd_port peer_port api_port <<<"$(free_ports 3)"

	spawn etcd "$DIR" "$ETCD" --name=e2e --data-dir="$DIR/etcd-data" \
		--listen-client-urls="http://127.0.0.1:$etcd_port" \
		--advertise-client-urls="http://127.0.0.1:$etcd_port" \
		--listen-peer-urls="http://127.0.0.1:$peer_port" \
		--initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
		--initial-cluster="e2e=http://127.0.0.1:$peer_port" \
		--unsafe-no-fsync=true --log-level=warn

	args=(
		--etcd-servers="http://127.0.0.1:$etcd_port"
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port"
		--cert-dir="$DIR/pki"
		--tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key"
		--client-ca-file="$DIR/pki/ca.crt"
		--authorization-mode=Node,RBAC
		# For logs and exec through a kubelet (test/e2e/node.sh), the admin's certificate.
		--kubelet-client-certificate="$DIR/pki/admin.crt" --kubelet-client-key="$DIR/pki/admin.key"
		--kubelet-preferred-address-types=InternalIP
		# Webhooks behind a Service are called at its endpoints' pod IPs: the bed has no
		# kube-proxy and no cluster DNS.
		--enable-aggregator-routing=true
		--service-account-issuer=https://kubernetes.default.svc.cluster.local
		--service-account-key-file="$DIR/pki/service-account.pub"
		--service-account-signing-key-file="$DIR/pki/service-account.key"
		--service-cluster-ip-range=10.0.0.0/24
		--allow-privileged=true
		# Pods would need their namespace's "default" ServiceAccount, which the controller
		# manager creates a moment after the namespace: tests that create a namespace and
		# a pod at once would race it. Controllers still authenticate as their own
		# service accounts (--use-service-account-credentials).
		--disable-admission-plugins=ServiceAccount
		# The "kubernetes" Service's endpoints would be 127.0.0.1, which validation refuses.
		--endpoint-reconciler-type=none
	)
	# ImagePolicyWebhook resolves a relative kubeConfigFile against the apiserver's working
	# directory, so the apiserver runs in the admission config's directory: relative paths
	# in it then mean "next to this file".
	local api_cwd=$DIR
	if [[ -n ${IMAGEGATE_E2E_ADMISSION_CONFIG:-} ]]; then
		[[ -f $IMAGEGATE_E2E_ADMISSION_CONFIG ]] || die "no such file: $IMAGEGATE_E2E_ADMISSION_CONFIG"
		api_cwd=$(cd "$(dirname "$IMAGEGATE_E2E_ADMISSION_CONFIG")" && pwd)
		args+=(--enable-admission-plugins=ImagePolicyWebhook
			--admission-control-config-file="$api_cwd/$(basename "$IMAGEGATE_E2E_ADMISSION_CONFIG")")
	fi
	# shellcheck disable=SC2206 # word splitting is the documented interface
	args+=(${IMAGEGATE_E2E_APISERVER_ARGS:-})

	for ((i = 0; ; i++)); do
		etcd_healthy "$etcd_port" && break
		ours etcd >/dev/null || { tail -n 20 "$DIR/etcd.log" >&2; die "etcd exited"; }
		((i < 200)) || { tail -n 20 "$DIR/etcd.log" >&2; die "etcd not healthy after 20s"; }
		sleep 0.1
	done
	# apiserver-start runs the same command again: its directory, binary and flags, NUL-separated.
	printf '%s\0' "$api_cwd" "$KUBE_APISERVER" "${args[@]}" >"$DIR/kube-apiserver.cmd"
	spawn kube-apiserver "$api_cwd" "$KUBE_APISERVER" "${args[@]}"
	kubeconfig "$DIR/kubeconfig" "$api_port" admin
	kubeconfig "$DIR/controller-manager.kubeconfig" "$api_port" controller-manager
	kubeconfig "$DIR/scheduler.kubeconfig" "$api_port" scheduler
	kubeconfig "$DIR/kubelet.kubeconfig" "$api_port" kubelet

	apiserver_ready

	local kcm_pid=null
	if [[ ${IMAGEGATE_E2E_CONTROLLERS:-1} != 0 ]]; then
		# Every on-by-default controller, each with its own service account's token, as
		# kubeadm runs them; no HTTPS port (nothing here scrapes it), no leader election.
		spawn kube-controller-manager "$DIR" "$KUBE_CONTROLLER_MANAGER" \
			--kubeconfig="$DIR/controller-manager.kubeconfig" \
			--use-service-account-credentials=true \
			--root-ca-file="$DIR/pki/ca.crt" \
			--service-cluster-ip-range=10.0.0.0/24 \
			--leader-elect=false --secure-port=0 \
			--concurrent-deployment-syncs=2 --concurrent-replicaset-syncs=2
		kcm_pid=$(cat "$DIR/kube-controller-manager.pid")
		# Ready when it has minted its controllers' service accounts: the ReplicaSet
		# controller's is among the first.
		deadline=$((SECONDS + START_TIMEOUT))
		until "$KUBECTL" --kubeconfig="$DIR/kubeconfig" -n kube-system get serviceaccount replicaset-controller \
			--request-timeout=2s >/dev/null 2>&1; do
			ours kube-controller-manager >/dev/null || {
				tail -n 30 "$DIR/kube-controller-manager.log" >&2
				die "kube-controller-manager exited"
			}
			((SECONDS < deadline)) || die "kube-controller-manager not ready after ${START_TIMEOUT}s"
			sleep 0.25
		done
	fi

	cat >"$DIR/env" <<-EOF
		export KUBECONFIG='$DIR/kubeconfig'
		export PATH='$(dirname "$KUBECTL")':"\$PATH"
		export IMAGEGATE_E2E_APISERVER='https://127.0.0.1:$api_port'
		export IMAGEGATE_E2E_KUBECTL='$KUBECTL'
		export IMAGEGATE_E2E_CA='$DIR/pki/ca.crt'
		export IMAGEGATE_E2E_DIR='$DIR'
		export IMAGEGATE_E2E_ETCD='http://127.0.0.1:$etcd_port'
	EOF
	cat >"$DIR/control-plane.json" <<-EOF
		{
		  "apiserver": "https://127.0.0.1:$api_port",
		  "kubeconfig": "$DIR/kubeconfig",
		  "kubectl": "$KUBECTL",
		  "ca": "$DIR/pki/ca.crt",
		  "clientCert": "$DIR/pki/admin.crt",
		  "clientKey": "$DIR/pki/admin.key",
		  "etcd": "http://127.0.0.1:$etcd_port",
		  "dir": "$DIR",
		  "version": "$("$KUBECTL" --kubeconfig="$DIR/kubeconfig" version -o json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).serverVersion.gitVersion))')",
		  "pids": { "etcd": $(cat "$DIR/etcd.pid"), "kubeApiserver": $(cat "$DIR/kube-apiserver.pid"), "kubeControllerManager": $kcm_pid }
		}
	EOF
	spawn watchdog "$DIR" bash "$HERE/control-plane.sh" __watchdog "$DIR" "${IMAGEGATE_E2E_OWNER_PID:-}" "$TTL"
	trap - EXIT INT TERM
	log "up in $(since "$t0"): https://127.0.0.1:$api_port, KUBECONFIG=$DIR/kubeconfig"
	cat "$DIR/env"
}

apiserver_ready() {
	local deadline=$((SECONDS + START_TIMEOUT))
	until "$KUBECTL" --kubeconfig="$DIR/kubeconfig" get --raw=/readyz --request-timeout=2s >/dev/null 2>&1; do
		ours kube-apiserver >/dev/null || { tail -n 30 "$DIR/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
		ours etcd >/dev/null || { tail -n 20 "$DIR/etcd.log" >&2; die "etcd exited"; }
		if ((SECONDS >= deadline)); then
			tail -n 30 "$DIR/kube-apiserver.log" >&2
			"$KUBECTL" --kubeconfig="$DIR/kubeconfig" get --raw='/readyz?verbose' --request-timeout=5s >&2 || true
			die "kube-apiserver not ready after ${START_TIMEOUT}s"
		fi
		sleep 0.25
	done
}

# The API server alone, as an outage the tests can make: stopped (TERM, KILL after
# STOP_TIMEOUT), then started again with the command start() saved.
apiserver_stop() {
	local pid i
	pid=$(ours kube-apiserver) || die "kube-apiserver is not running in $DIR"
	kill -TERM -- "-$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		kill -0 -- "-$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	rm -f "$DIR/kube-apiserver.pid"
}

apiserver_start() {
	local cmd=()
	ours kube-apiserver >/dev/null && die "kube-apiserver is already running in $DIR"
	[[ -f $DIR/kube-apiserver.cmd ]] || die "no $DIR/kube-apiserver.cmd: start the control plane first"
	mapfile -d '' cmd <"$DIR/kube-apiserver.cmd"
	KUBECTL=$(sed -n 's/.*"kubectl": "\(.*\)",$/\1/p' "$DIR/control-plane.json")
	mv -f "$DIR/kube-apiserver.log" "$DIR/kube-apiserver.log.$(date +%s%N)"
	spawn kube-apiserver "${cmd[0]}" "${cmd[@]:1}"
	apiserver_ready
	log "kube-apiserver started again"
}

# Runs in the background (see spawn): stops the control plane when the owner process is gone
# or the TTL has passed, so a crashed test runner never leaves etcd and an apiserver behind.
watchdog() {
	local owner=$1 deadline=$((SECONDS + $2))
	log "watching owner=${owner:-none} ttl=$2s"
	while sleep 2; do
		ours etcd >/dev/null || ours kube-apiserver >/dev/null || ours kube-controller-manager >/dev/null || exit 0
		if [[ -n $owner ]] && ! kill -0 "$owner" 2>/dev/null; then
			log "owner $owner is gone; stopping"
			break
		fi
		if ((SECONDS >= deadline)); then
			log "ttl reached; stopping"
			break
		fi
	done
	stop_all keep-watchdog
	rm -f "$DIR/watchdog.pid"
}

case ${1:-} in
start) start ;;
stop)
	stop_all
	log "stopped (logs kept in $DIR)"
	;;
env) cat "$DIR/env" 2>/dev/null || die "not running (no $DIR/env)" ;;
apiserver-stop) apiserver_stop ;;
apiserver-start) apiserver_start ;;
run)
	shift
	[[ ${1:-} == -- ]] && shift
	(($#)) || die "usage: $0 run -- CMD [ARGS...]"
	IMAGEGATE_E2E_OWNER_PID=${IMAGEGATE_E2E_OWNER_PID:-$$}
	start >/dev/null
	trap 'stop_all' EXIT
	trap 'exit 130' INT TERM
	# shellcheck disable=SC1091
	. "$DIR/env"
	rc=0
	"$@" || rc=$?
	exit "$rc"
	;;
__watchdog)
	DIR=$2
	watchdog "$3" "$4"
	;;
*)
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
