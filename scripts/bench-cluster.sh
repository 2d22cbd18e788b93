#!/usr/bin/env bash
# Push throughput of a three-node cluster (R=3, W=2) behind haproxy against
# a lone node, when every node has the same CPU budget, as if each ran on a
# machine of its own: each `wharf serve` process runs in a cgroup of its own
# (the cgroup v1 cpu controller) limited to BENCH_CPUS CPUs. haproxy and the
# client are not limited. Runs BenchmarkExternalPush
# (cmd/wharf/bench_external_test.go), prints its figures, then how much each
# node was throttled while it ran.
#
#   BENCH_CPUS=0.5          CPUs per node; 0 runs without limits
#   BENCHTIME=3x            -benchtime of the Go benchmark
#   WHARF_BENCH_LARGE=1     adds a 1 GiB push
#   BENCH_CLUSTER_PORT=15600  haproxy; the nodes listen on +10, +20 and +30
#                           (each also on +1 and +2), the lone node on +40
#   BENCH_CGROUP_ROOT=/sys/fs/cgroup/cpu
source "$(dirname "$0")/lib.sh"

BENCH_CPUS=${BENCH_CPUS:-0.5}
BENCHTIME=${BENCHTIME:-3x}
BASE_PORT=${BENCH_CLUSTER_PORT:-15600}
CG_ROOT=${BENCH_CGROUP_ROOT:-/sys/fs/cgroup/cpu}
# A short period spreads the quota thinly, so a node is throttled for at
# most a few milliseconds at a time rather than for most of 100ms.
PERIOD_US=10000
LB_PORT=$BASE_PORT
LB=127.0.0.1:$LB_PORT
NODES=(n1 n2 n3)
SINGLE=single
SINGLE_PORT=$((BASE_PORT + 40))
CGROUPS=()

node_port() { echo $((BASE_PORT + 10 * ($1 + 1))); }

[[ $BENCH_CPUS =~ ^[0-9]*\.?[0-9]+$ ]] || die "BENCH_CPUS must be a number of CPUs, e.g. 0.5 (0: no limits), not '$BENCH_CPUS'"
QUOTA_US=$(awk -v c="$BENCH_CPUS" -v p="$PERIOD_US" 'BEGIN { printf "%d", c * p }')
LIMITED=true
if [ "$QUOTA_US" -eq 0 ]; then
	LIMITED=false
elif [ "$QUOTA_US" -lt 1000 ]; then
	die "BENCH_CPUS=$BENCH_CPUS is below the kernel's smallest quota (0.1 CPU at a ${PERIOD_US}us period)"
fi

# remove_cgroup DIR: moves what is left in it back to the root group and
# removes it.
remove_cgroup() {
	local dir=$1 pid
	[ -d "$dir" ] || return 0
	if [ -f "$dir/cgroup.procs" ]; then
		while read -r pid; do
			echo "$pid" >"$CG_ROOT/cgroup.procs" 2>/dev/null || true
		done <"$dir/cgroup.procs"
	fi
	for _ in $(seq 1 50); do
		rmdir "$dir" 2>/dev/null && return 0
		sleep 0.1
	done
	printf 'WARNING: could not remove cgroup %s\n' "$dir" >&2
	return 1
}

# make_cgroup NAME: a cpu cgroup limited to BENCH_CPUS.
make_cgroup() {
	local dir=$CG_ROOT/wharf-bench-$1
	if [ -d "$dir" ]; then
		log "removing $dir, left by an earlier run"
		remove_cgroup "$dir" || die "$dir exists and cannot be removed"
	fi
	mkdir "$dir" 2>/dev/null ||
		die "cannot create the cgroup $dir: this needs root and the cgroup v1 cpu controller mounted at $CG_ROOT (BENCH_CGROUP_ROOT); BENCH_CPUS=0 runs without CPU limits"
	CGROUPS+=("$dir")
	echo "$PERIOD_US" >"$dir/cpu.cfs_period_us" || die "cannot set $dir/cpu.cfs_period_us"
	echo "$QUOTA_US" >"$dir/cpu.cfs_quota_us" || die "cannot set $dir/cpu.cfs_quota_us"
}

# limit NAME: moves node NAME's process (all its threads) into its cgroup.
limit() {
	local name=$1 dir=$CG_ROOT/wharf-bench-$1 pid=${NODE_PIDS[$1]}
	$LIMITED || return 0
	echo "$pid" >"$dir/cgroup.procs" || die "cannot move node $name ($pid) into $dir"
	grep -q ":/wharf-bench-$name\$" "/proc/$pid/cgroup" || die "node $name ($pid) is not in $dir"
}

cpu_stat() { awk -v k="$2" '$1 == k {print $2}' "$CG_ROOT/wharf-bench-$1/cpu.stat"; }

start_nodes() {
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
			--replicas 3 --write-quorum 2 --public-url "http://$LB"
		limit "${NODES[$i]}"
	done
	start_node_bg "$SINGLE" "$SINGLE_PORT"
	limit "$SINGLE"
	for i in 0 1 2; do
		wait_ready "${NODES[$i]}" "$(node_port "$i")"
	done
	wait_ready "$SINGLE" "$SINGLE_PORT"
	log "three cluster nodes and a lone node are ready"
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
	bind $LB
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

on_exit() {
	local rc=$? name dir
	set +e
	if [ -n "${HAPROXY_PID:-}" ]; then
		kill "$HAPROXY_PID" 2>/dev/null
		wait "$HAPROXY_PID" 2>/dev/null
	fi
	for name in "${!NODE_PIDS[@]}"; do
		kill_node "$name" KILL
	done
	for dir in "${CGROUPS[@]}"; do
		remove_cgroup "$dir"
	done
	(exit "$rc")
	cleanup
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v haproxy >/dev/null || die "haproxy is not installed"
if $LIMITED; then
	[ -f "$CG_ROOT/cpu.cfs_quota_us" ] ||
		die "no cgroup v1 cpu controller at $CG_ROOT (BENCH_CGROUP_ROOT); BENCH_CPUS=0 runs without CPU limits"
	for name in "${NODES[@]}" "$SINGLE"; do
		make_cgroup "$name"
	done
fi

build_wharf
log "building the benchmark"
(cd "$ROOT" && go test -c -o "$WORK/wharf.test" ./cmd/wharf)
start_nodes
start_haproxy

node_urls=() cluster_pids=()
for i in 0 1 2; do
	node_urls+=("http://127.0.0.1:$(node_port "$i")")
	cluster_pids+=("${NODE_PIDS[${NODES[$i]}]}")
done
if $LIMITED; then
	limits="each node limited to $BENCH_CPUS CPU (${QUOTA_US}us every ${PERIOD_US}us)"
	declare -A periods0=() throttled0=() ttime0=()
	for name in "${NODES[@]}" "$SINGLE"; do
		periods0[$name]=$(cpu_stat "$name" nr_periods)
		throttled0[$name]=$(cpu_stat "$name" nr_throttled)
		ttime0[$name]=$(cpu_stat "$name" throttled_time)
	done
else
	limits="no CPU limits"
fi
log "benchmark: 3 nodes (R=3, W=2) behind haproxy against a lone node, $limits, on $(nproc) cores, -benchtime=$BENCHTIME"
(cd "$ROOT/cmd/wharf" &&
	WHARF_BENCH_CLUSTER_URL=http://$LB \
		WHARF_BENCH_SINGLE_URL=http://127.0.0.1:$SINGLE_PORT \
		WHARF_BENCH_NODE_URLS=$(IFS=,; echo "${node_urls[*]}") \
		WHARF_BENCH_CLUSTER_PIDS=$(IFS=,; echo "${cluster_pids[*]}") \
		WHARF_BENCH_SINGLE_PID=${NODE_PIDS[$SINGLE]} \
		"$WORK/wharf.test" -test.run='^$' -test.bench='^BenchmarkExternalPush$' \
		-test.benchtime="$BENCHTIME" -test.timeout=0 -test.v) | tee "$WORK/bench.out"
grep -q '^BenchmarkExternalPush/' "$WORK/bench.out" || die "the benchmark printed no result"

echo
echo "bench-cluster: $limits; results:"
grep '^BenchmarkExternalPush/' "$WORK/bench.out"
if $LIMITED; then
	echo "throttling while the benchmark ran (cgroup cpu.stat, ${PERIOD_US}us periods):"
	for name in "${NODES[@]}" "$SINGLE"; do
		periods=$(($(cpu_stat "$name" nr_periods) - periods0[$name]))
		throttled=$(($(cpu_stat "$name" nr_throttled) - throttled0[$name]))
		ttime=$(($(cpu_stat "$name" throttled_time) - ttime0[$name]))
		awk -v n="$name" -v p="$periods" -v t="$throttled" -v tt="$ttime" 'BEGIN {
			printf "  %-6s nr_throttled %d of nr_periods %d (%.0f%%), throttled_time %.1fs\n",
				n, t, p, p ? 100 * t / p : 0, tt / 1e9 }'
	done
fi
