# What control-plane.sh and node.sh share: timing, the pid files that name the process
# groups they started, spawning such a group, and free loopback ports. Sourced, not run;
# the caller sets DIR (where the pid files and logs are).

clock() { if [[ -n ${EPOCHREALTIME:-} ]]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
since() { awk -v a="$1" -v b="$(clock)" 'BEGIN { printf "%.1fs", b - a }'; }

# A pid file names a process group we started. Before signalling it, check that the process
# still is ours (its command line mentions DIR), so a stale file never hits a reused pid.
ours() {
	local pid
	pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
		[[ $(ps -ww -o args= -p "$pid" 2>/dev/null) == *"$DIR"* ]] && echo "$pid"
}

any_alive() {
	local pid
	for pid; do kill -0 -- "-$pid" 2>/dev/null && return 0; done
	return 1
}

# Background jobs started under `set -m` lead their own process group (pgid = pid), so
# stop_one can signal a process together with anything it spawned. stdin and stdout are
# detached: a caller reading our output (execFile, $(...)) must not wait for the daemons.
spawn() {
	local name=$1 cwd=$2
	shift 2
	set -m
	(cd "$cwd" && exec "$@") </dev/null >"$DIR/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
	set +m
}

free_ports() {
	# Listen on N ephemeral ports at once (so they differ), report them, release them.
	node -e '
		const net = require("node:net");
		const n = Number(process.argv[1]);
		const servers = Array.from({ length: n }, () => net.createServer());
		Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
			console.log(servers.map((s) => s.address().port).join(" "));
			for (const s of servers) s.close();
		});' "$1"
}
