# Shared helpers for wharf's end-to-end scripts. Source it; do not run it.
# Every node a script starts is stopped when the script exits.

[ -n "${WHARF_LIB_LOADED:-}" ] && return 0
WHARF_LIB_LOADED=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHARF=${WHARF:-$ROOT/bin/wharf}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wharf-e2e.XXXXXX")
declare -A NODE_PIDS=()
# Every node a script starts creates the superuser admin with this password.
export WHARF_ADMIN_PASSWORD=${WHARF_ADMIN_PASSWORD:-wharf-e2e-admin-password}
ADMIN_USER=admin

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

build_wharf() {
	log "building wharf"
	(cd "$ROOT" && go build -o "$WHARF" ./cmd/wharf)
}

# start_node_bg NAME PORT [extra serve flags...]: starts a node whose data
# lives in $WORK/NAME and whose log is $WORK/NAME.log, listening on PORT
# (HTTP) and PORT+1 (cluster).
start_node_bg() {
	local name=$1 port=$2
	shift 2
	"$WHARF" serve --data-dir "$WORK/$name" --listen "127.0.0.1:$port" \
		--cluster-listen "127.0.0.1:$((port + 1))" --node-name "$name" "$@" \
		>>"$WORK/$name.log" 2>&1 &
	NODE_PIDS[$name]=$!
}

# start_node NAME PORT [extra serve flags...]: start_node_bg, then wait
# until the node is ready.
start_node() {
	start_node_bg "$@"
	wait_ready "$1" "$2"
}

# wait_ready NAME PORT [HOST]: waits until the node answers /readyz on
# HOST (default 127.0.0.1) and PORT.
wait_ready() {
	local name=$1 port=$2 host=${3:-127.0.0.1}
	for _ in $(seq 1 200); do
		if curl -fsS "http://$host:$port/readyz" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "${NODE_PIDS[$name]}" 2>/dev/null; then
			tail -n 30 "$WORK/$name.log" >&2
			die "node $name exited before it was ready"
		fi
		sleep 0.1
	done
	tail -n 30 "$WORK/$name.log" >&2
	die "node $name was not ready within 20s"
}

# kill_node NAME [SIGNAL]
kill_node() {
	local name=$1 sig=${2:-TERM}
	local pid=${NODE_PIDS[$name]:-}
	[ -n "$pid" ] || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "NODE_PIDS[$name]"
}

cleanup() {
	local rc=$? name
	for name in "${!NODE_PIDS[@]}"; do
		kill_node "$name" KILL
	done
	if [ "$rc" -eq 0 ] && [ "${KEEP_WORK:-}" = "" ]; then
		rm -rf "$WORK"
	else
		log "kept $WORK"
	fi
}
trap cleanup EXIT
