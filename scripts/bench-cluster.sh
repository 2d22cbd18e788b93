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
#   WHARF_BENCH_CLIENTS=1,4 client counts: above 1, that many clients push
#                           an image each at once ("<size>x<count>")
#   BENCH_CLUSTER_PORT=15600  haproxy; the nodes listen on +10, +20 and +30
#                           (each also on +1 and +2), the lone node on +40
#   BENCH_CGROUP_ROOT=/sys/fs/cgroup/cpu
#   BENCH_NIC=              e.g. 1gbit: each node runs in a network namespace
#                           of its own, on a veth pair to a bridge, with its
#                           sending and its receiving each limited to this
#                           rate (tc tbf), as if it had a NIC of that speed;
#                           haproxy and the client stay outside, unlimited
#   BENCH_PATTERN='^BenchmarkExternalPush$'  -bench pattern, e.g. 'ExternalPush/100MiB'
#   BENCH_PROFILE_DIR=      when set, a CPU profile of each node (n1.pprof ...
#                           single.pprof) is taken over the first
#                           BENCH_PROFILE_SECONDS (default 20) of the run,
#                           and its metrics (n1.metrics ...) at the end
source "$(dirname "$0")/lib.sh"

BENCH_CPUS=${BENCH_CPUS:-0.5}
BENCH_PATTERN=${BENCH_PATTERN:-'^BenchmarkExternalPush$'}
BENCH_PROFILE_DIR=${BENCH_PROFILE_DIR:-}
BENCH_PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-20}
BENCH_NIC=${BENCH_NIC:-}
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

# Node addresses: loopback, or with BENCH_NIC one namespace per node on
# 10.78.0.0/24 (n1 n2 n3 single are .1 to .4; the bridge is .254).
NET_PREFIX=wb$$
BRIDGE=$NET_PREFIX-br
HOSTS=(127.0.0.1 127.0.0.1 127.0.0.1 127.0.0.1)
if [ -n "$BENCH_NIC" ]; then
	HOSTS=(10.78.0.1 10.78.0.2 10.78.0.3 10.78.0.4)
fi
node_ns() { echo "$NET_PREFIX-n$(($1 + 1))"; }

# setup_nic_network: a bridge in a namespace of its own (out of reach of
# the host's firewall, which may drop bridged traffic) with a veth pair to
# the root namespace, where haproxy and the client run, and one to each
# node's namespace. tbf on a node's eth0 limits what it sends, tbf on the
# bridge side of its pair what it receives. The burst allows one 64 KiB
# segmentation-offload packet and then some.
setup_nic_network() {
	local i ns peer
	command -v tc >/dev/null || die "BENCH_NIC needs tc (iproute2)"
	ip netns add "$BRIDGE"
	ip -n "$BRIDGE" link set lo up
	ip -n "$BRIDGE" link add br0 type bridge
	ip -n "$BRIDGE" link set br0 up
	ip link add "$NET_PREFIX-h" type veth peer name host netns "$BRIDGE"
	ip addr add 10.78.0.254/24 dev "$NET_PREFIX-h"
	ip link set "$NET_PREFIX-h" up
	ip -n "$BRIDGE" link set host master br0
	ip -n "$BRIDGE" link set host up
	for i in 0 1 2 3; do
		ns=$(node_ns "$i") peer=s$((i + 1))
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip -n "$ns" link add eth0 type veth peer name "$peer" netns "$BRIDGE"
		ip -n "$ns" addr add "${HOSTS[$i]}/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$BRIDGE" link set "$peer" master br0
		ip -n "$BRIDGE" link set "$peer" up
		ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$BENCH_NIC" burst 512kb latency 50ms ||
			die "tc tbf rate $BENCH_NIC failed (is BENCH_NIC a tc rate such as 1gbit?)"
		ip netns exec "$BRIDGE" tc qdisc add dev "$peer" root tbf rate "$BENCH_NIC" burst 512kb latency 50ms
	done
	log "each node in its own namespace, sending and receiving at most $BENCH_NIC"
}

teardown_nic_network() {
	local i
	[ -n "$BENCH_NIC" ] || return 0
	for i in 0 1 2 3; do
		ip netns del "$(node_ns "$i")" 2>/dev/null || true
	done
	ip netns del "$BRIDGE" 2>/dev/null || true
	ip link del "$NET_PREFIX-h" 2>/dev/null || true
}

# start_bench_node I NAME PORT [serve flags...]: node I, on loopback or in
# its namespace.
start_bench_node() {
	local i=$1 name=$2 port=$3 host=${HOSTS[$1]}
	shift 3
	if [ -z "$BENCH_NIC" ]; then
		start_node_bg "$name" "$port" "$@"
		return
	fi
	# Not in a subshell: $! must be the node itself (ip netns exec execs it).
	ip netns exec "$(node_ns "$i")" "$WHARF" serve --data-dir "$WORK/$name" --listen "$host:$port" \
		--cluster-listen "$host:$((port + 1))" --node-name "$name" "$@" >>"$WORK/$name.log" 2>&1 &
	NODE_PIDS[$name]=$!
}

# pprof_flags I PORT: serve flags that expose node I's profiles on PORT+3
# when asked to.
pprof_flags() {
	[ -n "$BENCH_PROFILE_DIR" ] && echo "--pprof-listen ${HOSTS[$1]}:$(($2 + 3))"
	return 0
}

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
		joins+=("${HOSTS[$i]}:$(($(node_port "$i") + 2))")
	done
	for i in 0 1 2; do
		port=$(node_port "$i")
		start_bench_node "$i" "${NODES[$i]}" "$port" \
			--gossip-listen "${HOSTS[$i]}:$((port + 2))" --advertise "${HOSTS[$i]}" \
			--bootstrap-expect 3 --join "$(IFS=,; echo "${joins[*]}")" --cluster-key "$key" \
			--replicas 3 --write-quorum 2 --public-url "http://$LB" $(pprof_flags "$i" "$port")
		limit "${NODES[$i]}"
	done
	start_bench_node 3 "$SINGLE" "$SINGLE_PORT" $(pprof_flags 3 "$SINGLE_PORT")
	limit "$SINGLE"
	for i in 0 1 2; do
		wait_ready "${NODES[$i]}" "$(node_port "$i")" "${HOSTS[$i]}"
	done
	wait_ready "$SINGLE" "$SINGLE_PORT" "${HOSTS[3]}"
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
		echo "	server ${NODES[$i]} ${HOSTS[$i]}:$(node_port "$i") check inter 500ms fall 2 rise 2" >>"$cfg"
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
	teardown_nic_network
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

[ -z "$BENCH_NIC" ] || setup_nic_network
build_wharf
log "building the benchmark"
(cd "$ROOT" && go test -c -o "$WORK/wharf.test" ./cmd/wharf)
start_nodes
start_haproxy

node_urls=() cluster_pids=()
for i in 0 1 2; do
	node_urls+=("http://${HOSTS[$i]}:$(node_port "$i")")
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
PROFILERS=()
if [ -n "$BENCH_PROFILE_DIR" ]; then
	mkdir -p "$BENCH_PROFILE_DIR"
	for i in 0 1 2 3; do
		if [ "$i" = 3 ]; then name=$SINGLE port=$SINGLE_PORT; else name=${NODES[$i]} port=$(node_port "$i"); fi
		curl -fsS -o "$BENCH_PROFILE_DIR/$name.pprof" \
			"http://${HOSTS[$i]}:$((port + 3))/debug/pprof/profile?seconds=$BENCH_PROFILE_SECONDS" &
		PROFILERS+=($!)
	done
	log "profiling every node for ${BENCH_PROFILE_SECONDS}s into $BENCH_PROFILE_DIR"
fi
log "benchmark: 3 nodes (R=3, W=2) behind haproxy against a lone node, $limits, on $(nproc) cores, -benchtime=$BENCHTIME"
(cd "$ROOT/cmd/wharf" &&
	WHARF_BENCH_CLUSTER_URL=http://$LB \
		WHARF_BENCH_SINGLE_URL=http://${HOSTS[3]}:$SINGLE_PORT \
		WHARF_BENCH_NODE_URLS=$(IFS=,; echo "${node_urls[*]}") \
		WHARF_BENCH_CLUSTER_PIDS=$(IFS=,; echo "${cluster_pids[*]}") \
		WHARF_BENCH_SINGLE_PID=${NODE_PIDS[$SINGLE]} \
		"$WORK/wharf.test" -test.run='^$' -test.bench="$BENCH_PATTERN" \
		-test.benchtime="$BENCHTIME" -test.timeout=0 -test.v) | tee "$WORK/bench.out"
grep -q '^BenchmarkExternalPush/' "$WORK/bench.out" || die "the benchmark printed no result"
for pid in "${PROFILERS[@]}"; do
	wait "$pid" || log "a profile could not be taken (was the run shorter than ${BENCH_PROFILE_SECONDS}s?)"
done
if [ -n "$BENCH_PROFILE_DIR" ]; then
	for i in 0 1 2 3; do
		if [ "$i" = 3 ]; then name=$SINGLE port=$SINGLE_PORT; else name=${NODES[$i]} port=$(node_port "$i"); fi
		curl -fsS -u "$ADMIN_USER:$WHARF_ADMIN_PASSWORD" -o "$BENCH_PROFILE_DIR/$name.metrics" \
			"http://${HOSTS[$i]}:$port/metrics" || log "could not read the metrics of $name"
	done
	log "profiles and metrics of every node are in $BENCH_PROFILE_DIR"
fi

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
