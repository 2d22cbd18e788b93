#!/usr/bin/env bash
# End-to-end test of a three-node cluster behind haproxy (round robin, no
# stickiness), with real podman:
#  1. three nodes started at once with --bootstrap-expect 3 form one cluster;
#  2. podman pushes a multi-layer image through haproxy; it pulls intact
#     through haproxy and through each node directly;
#  3. the OCI conformance suite passes through haproxy;
#  4. one node is killed with SIGKILL and the image still pulls through
#     haproxy.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/podman.sh"
source "$(dirname "$0")/conformance.sh"

BASE_PORT=${E2E_CLUSTER_PORT:-15400}
LB_PORT=$BASE_PORT
LB=localhost:$LB_PORT
NODES=(n1 n2 n3)

node_port() { echo $((BASE_PORT + 10 * ($1 + 1))); }

start_cluster() {
	local key i port joins=()
	key=$("$WHARF" keygen)
	for i in 0 1 2; do
		joins+=("127.0.0.1:$(($(node_port "$i") + 2))")
	done
	for i in 0 1 2; do
		port=$(node_port "$i")
		start_node_bg "${NODES[$i]}" "$port" \
			--gossip-listen "127.0.0.1:$((port + 2))" --advertise 127.0.0.1 \
			--bootstrap-expect 3 --join "$(IFS=,; echo "${joins[*]}")" --cluster-key "$key" \
			--public-url "http://$LB" --sparse-manifests
	done
	for i in 0 1 2; do
		wait_ready "${NODES[$i]}" "$(node_port "$i")"
	done
	log "three nodes are ready"
}

start_haproxy() {
	local cfg=$WORK/haproxy.cfg i
	cat >"$cfg" <<CFG
global
	maxconn 256
defaults
	mode http
	timeout connect 5s
	timeout client 5m
	timeout server 5m
	option redispatch
	retries 2
frontend registry
	bind 127.0.0.1:$LB_PORT
	default_backend wharf
backend wharf
	balance roundrobin
	option httpchk GET /readyz
CFG
	for i in 0 1 2; do
		echo "	server ${NODES[$i]} 127.0.0.1:$(node_port "$i") check inter 500ms fall 2 rise 2" >>"$cfg"
	done
	haproxy -f "$cfg" -db >"$WORK/haproxy.log" 2>&1 &
	HAPROXY_PID=$!
	for _ in $(seq 1 100); do
		curl -fsS "http://$LB/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "haproxy did not come up"
}

stop_haproxy() { kill "${HAPROXY_PID:-}" 2>/dev/null || true; }
trap 'stop_haproxy; cleanup' EXIT

build_wharf
start_cluster
start_haproxy

log "2. podman push through haproxy, pull through haproxy and every node"
podman_login "$LB"
for i in 0 1 2; do
	podman_login "localhost:$(node_port "$i")"
done
build_image localhost/e2e/cluster:v1 3 300000
round_trip_podman localhost/e2e/cluster:v1 "$LB/e2e/cluster:v1"
want=$(image_id "$LB/e2e/cluster:v1")
for i in 0 1 2; do
	ref=localhost:$(node_port "$i")/e2e/cluster:v1
	"${PODMAN[@]}" pull -q "${TLS[@]}" "$ref" >/dev/null
	[ "$(image_id "$ref")" = "$want" ] || die "pull through ${NODES[$i]} gave another image"
done
log "pulled the same image through every node"

log "3. the conformance suite through haproxy"
CONFORMANCE_REGISTRY=127.0.0.1:$LB_PORT run_conformance cluster true

log "4. kill -9 one node, pull again through haproxy"
kill_node n2 KILL
sleep 2
"${PODMAN[@]}" rmi -f "$LB/e2e/cluster:v1" >/dev/null
"${PODMAN[@]}" pull -q "${TLS[@]}" "$LB/e2e/cluster:v1" >/dev/null
[ "$(image_id "$LB/e2e/cluster:v1")" = "$want" ] || die "the image changed after a node died"
log "the image still pulls with one node dead"

echo "e2e-cluster: 4 passed, 0 failed"
