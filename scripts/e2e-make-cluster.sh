#!/usr/bin/env bash
# End-to-end test of `make cluster`, the local three-node cluster:
#  1. make cluster builds bin/wharf, starts three nodes and haproxy, and
#     prints the balancer's URL and how to log in;
#  2. one wharf login through haproxy serves every node; podman logs in,
#     pushes an image through haproxy and pulls it back intact;
#  3. Ctrl-C (SIGINT to make's whole process group, as a terminal sends it)
#     stops every process promptly (the three nodes and haproxy), and no
#     node logs an error while stopping;
#  4. make cluster run again starts the same cluster from its data.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/podman.sh"

PORT=${E2E_MAKE_CLUSTER_PORT:-15700}
LB=localhost:$PORT
DIR=$WORK/cluster
export XDG_CONFIG_HOME=$WORK/config # wharf login keeps its credentials here
unset WHARF_ADMIN_PASSWORD          # make cluster generates one
MAKE_PID=

# start_make_cluster: make cluster in a process group of its own (job
# control on), as a terminal runs it, until it says it is ready.
start_make_cluster() {
	set -m
	make -C "$ROOT" cluster CLUSTER_DIR="$DIR" CLUSTER_PORT="$PORT" >"$WORK/make.out" 2>&1 &
	MAKE_PID=$!
	set +m
	for _ in $(seq 1 6000); do
		grep -q "Press Ctrl-C to stop the cluster" "$WORK/make.out" && return 0
		kill -0 "$MAKE_PID" 2>/dev/null || { cat "$WORK/make.out" >&2; die "make cluster exited before the cluster was ready"; }
		sleep 0.1
	done
	cat "$WORK/make.out" >&2
	die "make cluster was not ready within 10 minutes"
}

# interrupt: Ctrl-C, then every process of the cluster must be gone within
# 20s, and make with them.
interrupt() {
	local pids name pid
	pids=$(cat "$DIR/pids")
	kill -INT -- "-$MAKE_PID"
	for _ in $(seq 1 200); do
		kill -0 "$MAKE_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$MAKE_PID" 2>/dev/null && die "make cluster still runs 20s after Ctrl-C"
	wait "$MAKE_PID" 2>/dev/null || true
	MAKE_PID=
	while read -r name pid; do
		kill -0 "$pid" 2>/dev/null && die "$name (pid $pid) still runs after make cluster stopped"
	done <<<"$pids"
	[ "$(wc -l <<<"$pids")" -eq 4 ] || die "make cluster recorded $(wc -l <<<"$pids") processes, want 3 nodes and haproxy"
	grep -q "the cluster is stopped" "$WORK/make.out" || die "make cluster did not say it stopped the cluster"
}

# Whatever happens, leave no process behind: the group make leads, by its ID.
stop_make_cluster() { [ -z "$MAKE_PID" ] || kill -KILL -- "-$MAKE_PID" 2>/dev/null || true; }
trap 'stop_make_cluster; cleanup' EXIT

log "1. make cluster"
start_make_cluster
for want in "registry (haproxy)  http://$LB" "podman login --tls-verify=false -u admin $LB" \
	"bin/wharf login http://$LB -u admin"; do
	grep -qF -- "$want" "$WORK/make.out" || die "make cluster did not print '$want'"
done
PASSWORD=$(cat "$DIR/admin-password")
grep -qF -- "$PASSWORD" "$WORK/make.out" || die "make cluster did not print the admin password"
log "make cluster printed the URLs and the login"

log "2. one login through haproxy serves every node; podman push and pull"
"$WHARF" login "http://$LB" -u admin --password-stdin <"$DIR/admin-password" >/dev/null
for i in 1 2 3; do
	out=$("$WHARF" cluster members --server "http://127.0.0.1:$((PORT + i))")
	[ "$(grep -c ' alive ' <<<"$out")" -eq 3 ] || die "node $i does not list three alive members:
$out"
done
podman_login "$LB" admin "$PASSWORD"
build_image localhost/e2e/make-cluster:v1 2 200000
round_trip_podman localhost/e2e/make-cluster:v1 "$LB/e2e/make-cluster:v1"

log "3. Ctrl-C stops every process"
interrupt
errors=$(grep -h "level=ERROR" "$DIR"/n?.log || true)
[ -z "$errors" ] || die "nodes logged errors:
$errors"
log "all four processes ended, no node logged an error"

log "4. make cluster starts the same cluster again"
start_make_cluster
"${PODMAN[@]}" rmi -f "$LB/e2e/make-cluster:v1" >/dev/null
"${PODMAN[@]}" pull -q "${TLS[@]}" "$LB/e2e/make-cluster:v1" >/dev/null
log "the image pulls after the restart"
interrupt

echo "e2e-make-cluster: 4 passed, 0 failed"
