#!/usr/bin/env bash
# make cluster: a three-node wharf cluster on this machine behind haproxy,
# in plain HTTP on loopback, until Ctrl-C (SIGINT) or SIGTERM stops it.
#
#   CLUSTER_DIR   data dirs, logs, cluster key, admin password (default ./wharf-cluster);
#                 kept between runs, so the next run starts the same cluster again
#   CLUSTER_PORT  the balancer's port (default 5100); node i (1..3) serves on
#                 CLUSTER_PORT+i, its cluster port is CLUSTER_PORT+100+i and its
#                 gossip port CLUSTER_PORT+200+i
#
# The balancer's configuration is deploy/haproxy-local.cfg with these ports.
# WHARF_ADMIN_PASSWORD, if set on the first run, is the admin password;
# otherwise one is generated. Either way it is kept in CLUSTER_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHARF=$ROOT/bin/wharf
DIR=${CLUSTER_DIR:-$ROOT/wharf-cluster}
LB_PORT=${CLUSTER_PORT:-5100}
LB=localhost:$LB_PORT
NODES=(n1 n2 n3)
declare -A PIDS=()

log() { printf '==> %s\n' "$*" >&2; }

node_port() { echo $((LB_PORT + $1)); }
cluster_port() { echo $((LB_PORT + 100 + $1)); }
gossip_port() { echo $((LB_PORT + 200 + $1)); }

# secret FILE VALUE: the content of FILE, created (mode 0600) with VALUE
# on the first run.
secret() {
	if [ ! -s "$1" ]; then
		(umask 077 && printf '%s\n' "$2" >"$1")
	fi
	cat "$1"
}

random_password() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }

# show PATH: PATH relative to the working directory when under it.
show() { echo "${1#"$PWD"/}"; }

start_nodes() {
	local key=$1 i joins=()
	for i in 1 2 3; do
		joins+=("127.0.0.1:$(gossip_port "$i")")
	done
	for i in 1 2 3; do
		local name=${NODES[$((i - 1))]}
		"$WHARF" serve --data-dir "$DIR/$name" --node-name "$name" \
			--listen "127.0.0.1:$(node_port "$i")" --cluster-listen "127.0.0.1:$(cluster_port "$i")" \
			--gossip-listen "127.0.0.1:$(gossip_port "$i")" --advertise 127.0.0.1 \
			--bootstrap-expect 3 --join "$(IFS=,; echo "${joins[*]}")" --cluster-key "$key" \
			--public-url "http://$LB" >>"$DIR/$name.log" 2>&1 &
		PIDS[$name]=$!
	done
}

# haproxy_config prints deploy/haproxy-local.cfg with this run's ports
# (through placeholders, so that a new port never matches an old one).
haproxy_config() {
	local i from=() to=()
	for i in 0 1 2 3; do
		from+=(-e "s/127\.0\.0\.1:510$i\b/127.0.0.1:@PORT$i@/g")
		to+=(-e "s/@PORT$i@/$((LB_PORT + i))/g")
	done
	sed "${from[@]}" "$ROOT/deploy/haproxy-local.cfg" | sed "${to[@]}"
}

start_haproxy() {
	haproxy_config >"$DIR/haproxy.cfg"
	haproxy -f "$DIR/haproxy.cfg" -db >>"$DIR/haproxy.log" 2>&1 &
	PIDS[haproxy]=$!
}

# wait_ready NAME URL: waits until URL/readyz answers 200 while NAME runs.
wait_ready() {
	local name=$1 url=$2
	for _ in $(seq 1 600); do
		curl -fsS "$url/readyz" >/dev/null 2>&1 && return 0
		if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
			tail -n 20 "$DIR/$name.log" >&2
			log "$name exited before it was ready (log: $DIR/$name.log)"
			return 1
		fi
		sleep 0.1
	done
	log "$name was not ready within 60s (log: $DIR/$name.log)"
	return 1
}

# stop sends SIGTERM to every process at once (each node leaves the
# cluster; with none staying, each shuts down at once), waits for them,
# and kills what is left after 45s.
stop() {
	trap - INT TERM
	local name pid deadline=$((SECONDS + 45))
	log "stopping the cluster"
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for name in "${!PIDS[@]}"; do
		pid=${PIDS[$name]}
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name did not stop; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	rm -f "$DIR/pids"
	log "the cluster is stopped; its data stays in $(show "$DIR") (make cluster starts it again)"
}

banner() {
	local password=$1 wharf dir
	wharf=$(show "$WHARF")
	dir=$(show "$DIR")
	cat <<EOF

================================================================================
 A three-node wharf cluster runs on this machine, behind haproxy:

     registry (haproxy)  http://$LB
     nodes               http://127.0.0.1:$(node_port 1)  http://127.0.0.1:$(node_port 2)  http://127.0.0.1:$(node_port 3)
     data and logs       $dir

 Every port listens on loopback only. The superuser "admin" has the password
 $password (kept in $dir/admin-password). Log in with:

     podman login --tls-verify=false -u admin $LB
     $wharf login http://$LB -u admin --password-stdin < $dir/admin-password
     $wharf cluster members

 Press Ctrl-C to stop the cluster.
================================================================================

EOF
}

main() {
	mkdir -p "$DIR"
	log "building bin/wharf (the first build compiles every dependency: a few minutes)"
	(cd "$ROOT" && go build -o "$WHARF" ./cmd/wharf)
	local key password name
	[ -s "$DIR/cluster.key" ] || key=$("$WHARF" keygen)
	key=$(secret "$DIR/cluster.key" "${key:-}")
	password=$(secret "$DIR/admin-password" "${WHARF_ADMIN_PASSWORD:-$(random_password)}")
	export WHARF_ADMIN_PASSWORD=$password
	trap 'stop; exit 0' INT TERM
	log "starting three nodes and haproxy (logs in $(show "$DIR")/*.log)"
	start_nodes "$key"
	start_haproxy
	for name in "${!PIDS[@]}"; do
		echo "$name ${PIDS[$name]}"
	done >"$DIR/pids"
	local i
	for i in 1 2 3; do
		wait_ready "${NODES[$((i - 1))]}" "http://127.0.0.1:$(node_port "$i")" || { stop; exit 1; }
	done
	wait_ready haproxy "http://$LB" || { stop; exit 1; }
	banner "$password"
	# Until a signal, or until a process ends by itself, which stops the rest.
	wait -n "${PIDS[@]}" || true
	log "a process of the cluster exited; see the logs in $DIR"
	stop
	exit 1
}

main "$@"
