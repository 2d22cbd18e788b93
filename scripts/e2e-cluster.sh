#!/usr/bin/env bash
# End-to-end test of a three-node cluster behind haproxy (round robin, no
# stickiness), with real podman:
#  1. three nodes started at once with --bootstrap-expect 3 form one cluster;
#  2. podman pushes a multi-layer image through haproxy; it pulls intact
#     through haproxy and through each node directly;
#  3. the OCI conformance suite passes through haproxy;
#  4. failed logins through haproxy are throttled per (client, user) on
#     every node, without locking the user out elsewhere;
#  5. one node is killed with SIGKILL and the image still pulls through
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
			--public-url "http://$LB" --sparse-manifests --trusted-proxies 127.0.0.1
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
	option forwardfor
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

log "4. failed logins through haproxy: throttled per client and user, on every node"
# status_from ADDR USER PASSWORD: the HTTP status of a Basic login through
# haproxy by a client at ADDR (haproxy's client is 127.0.0.1, a trusted
# proxy here, so the address the client forwards counts).
status_from() {
	curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-For: $1" -u "$2:$3" "http://$LB/v2/"
}
for i in $(seq 1 97); do
	[ "$(status_from 203.0.113.66 "random-$i" guess)" = 401 ] || die "failed login $i of a random user was not a 401"
done
[ "$(status_from 203.0.113.66 "$ADMIN_USER" "$WHARF_ADMIN_PASSWORD")" = 200 ] ||
	die "97 failed logins of random users locked the admin out"
# Five failures are free; the sixth locks the pair out for 1s, the
# seventh for 2s, the eighth for 4s, whichever nodes the guesses reach.
for i in 1 2 3 4 5 6; do
	[ "$(status_from 203.0.113.66 "$ADMIN_USER" guess)" = 401 ] || die "guess $i at the admin password was not a 401"
done
locked=
for _ in 1 2 3 4 5 6 7 8; do # within the 1s lockout, as gossip spreads the failures
	[ "$(status_from 203.0.113.66 "$ADMIN_USER" "$WHARF_ADMIN_PASSWORD")" = 429 ] && locked=1 && break
	sleep 0.1
done
[ -n "$locked" ] || die "no 1s lockout after six failures"
sleep 1.5 # past the lockout on every node, which counts it from when it heard
[ "$(status_from 203.0.113.66 "$ADMIN_USER" guess)" = 401 ] || die "guess 7 after the 1s lockout was not a 401"
sleep 2.5
[ "$(status_from 203.0.113.66 "$ADMIN_USER" guess)" = 401 ] || die "guess 8 after the 2s lockout was not a 401"
sleep 0.8 # the failures reach every node by gossip
for i in 0 1 2; do # haproxy round-robins: each of the three nodes answers
	got=$(status_from 203.0.113.66 "$ADMIN_USER" "$WHARF_ADMIN_PASSWORD")
	[ "$got" = 429 ] || die "the admin's right password from the guessing address within the 4s lockout: HTTP $got, want 429 on every node"
done
[ "$(status_from 198.51.100.7 "$ADMIN_USER" "$WHARF_ADMIN_PASSWORD")" = 200 ] ||
	die "the admin's right password from another address was refused"
log "97 random failures locked no one out; 6 guesses locked that client and user out on every node, not the user elsewhere"

log "5. kill -9 one node, pull again through haproxy"
kill_node n2 KILL
sleep 2
"${PODMAN[@]}" rmi -f "$LB/e2e/cluster:v1" >/dev/null
"${PODMAN[@]}" pull -q "${TLS[@]}" "$LB/e2e/cluster:v1" >/dev/null
got=$(image_id "$LB/e2e/cluster:v1") || die "no image after the pull with a node dead"
[ "$got" = "$want" ] || die "the image changed after a node died: $got, want $want"
log "the image still pulls with one node dead"

echo "e2e-cluster: 5 passed, 0 failed"
