# Shared parts of the end-to-end scripts that run a session on three nodes
# behind haproxy (e2e-manage.sh, e2e-sync.sh): the session log (each CLI
# command echoed with its output, as one would type it), running commands
# as a user, the cluster and its balancer, FROM-scratch images. Source it
# after lib.sh and podman.sh, once these are set: BASE_PORT, LB, LB_PORT,
# NODES (three names), SESSION (the session file), CLUSTER_FLAGS (extra
# serve flags, an array).
# shellcheck shell=bash disable=SC2034

node_port() { echo $((BASE_PORT + 10 * ($1 + 1))); }
node_url() { echo "http://127.0.0.1:$(node_port "$1")"; }
node_dir() { echo "$WORK/${NODES[$1]}"; }

# --- the session log ---

: >"$SESSION"
# say TEXT...: a line of the session (stdout and the session file).
say() { printf '%s\n' "$*" | tee -a "$SESSION"; }
# section TITLE
section() { say ""; say "### $*"; }
# check TEXT: a check that passed.
check() { say "# ok: $*"; }
fail() {
	say "# FAILED: $*"
	die "$*"
}

# shown ARGS...: the command line as one would type it.
shown() {
	local out=() a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:@=,+%-]+$ ]]; then
			out+=("$a")
		else
			out+=("'${a//\'/\'\\\'\'}'")
		fi
	done
	echo "${out[*]}"
}

# as USER CMD...: runs CMD as USER: wharf with USER's stored login (its own
# XDG_CONFIG_HOME), podman with its storage under $WORK, cosign with USER's
# registry login.
as() {
	local user=$1
	shift
	case $1 in
	podman) set -- "${PODMAN[@]}" "${@:2}" ;;
	cosign) set -- "$COSIGN" "${@:2}" ;;
	esac
	XDG_CONFIG_HOME=$WORK/home-$user DOCKER_CONFIG=$WORK/docker-$user COSIGN_PASSWORD='' "$@"
}

# run USER CMD...: prints "USER$ CMD", runs it, prints its output. OUT is
# its stdout, ERR its stderr, RC its exit status.
run() {
	local user=$1
	shift
	say "$user\$ $(shown "$@")"
	set +e
	as "$user" "$@" >"$WORK/stdout" 2>"$WORK/stderr"
	RC=$?
	set -e
	OUT=$(cat "$WORK/stdout")
	ERR=$(cat "$WORK/stderr")
	if [ -n "${QUIET:-}" ]; then
		say "($(wc -l <"$WORK/stdout") lines of JSON, checked with jq)"
		tee -a "$SESSION" <"$WORK/stderr"
	else
		tee -a "$SESSION" <"$WORK/stdout"
		if [ -s "$WORK/stdout" ] && [ "$(tail -c 1 "$WORK/stdout" | od -An -c | tr -d ' ')" != '\n' ]; then
			say $'\n[no newline at the end of the output]'
		fi
		tee -a "$SESSION" <"$WORK/stderr"
	fi
	if [ "$RC" != 0 ]; then say "[exit status $RC]"; fi
}

# ok USER CMD...: run, and fail unless it succeeds.
ok() {
	run "$@"
	[ "$RC" = 0 ] || fail "'$(shown "${@:2}")' as $1 failed with exit status $RC"
}

# fails STATUS USER CMD...: run, and fail unless it exits with STATUS
# (any non-zero status for "nonzero").
fails() {
	local want=$1
	shift
	run "$@"
	if [ "$want" = nonzero ]; then
		[ "$RC" != 0 ] || fail "'$(shown "${@:2}")' as $1 succeeded; it must fail"
	else
		[ "$RC" = "$want" ] || fail "'$(shown "${@:2}")' as $1 exited with $RC, want $want"
	fi
}

# --- the cluster ---

# start_cluster: the three nodes, bootstrapped together, under one new
# cluster key (kept in $WORK/cluster.key for restarts).
start_cluster() {
	local i
	"$WHARF" keygen >"$WORK/cluster.key"
	for i in 0 1 2; do
		start_cluster_node "$i" --bootstrap-expect 3
	done
	for i in 0 1 2; do
		wait_ready "${NODES[$i]}" "$(node_port "$i")"
	done
}

# start_cluster_node I [flags...]: starts node I in the background, joined
# to the others' gossip, with CLUSTER_FLAGS; a restart keeps its data.
start_cluster_node() {
	local i=$1 j port joins=()
	shift
	for j in 0 1 2; do
		joins+=("127.0.0.1:$(($(node_port "$j") + 2))")
	done
	port=$(node_port "$i")
	start_node_bg "${NODES[$i]}" "$port" \
		--gossip-listen "127.0.0.1:$((port + 2))" --advertise 127.0.0.1 \
		--join "$(IFS=,; echo "${joins[*]}")" --cluster-key "$(cat "$WORK/cluster.key")" \
		--public-url "http://$LB" --trusted-proxies 127.0.0.1 "${CLUSTER_FLAGS[@]}" "$@"
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

# node_id I: the Raft ID of node I.
node_id() {
	XDG_CONFIG_HOME=$WORK/home-admin "$WHARF" status --server "$(node_url "$1")" |
		sed -n 's/^Node: *[^ ]* (\(.*\))$/\1/p'
}

# build TAG DIR PLATFORM FILES...: a FROM-scratch image of one COPY layer per
# file in DIR, for PLATFORM, with fixed timestamps so that the same file
# makes the same layer in every image.
build() {
	local tag=$1 dir=$2 platform=$3 f
	shift 3
	echo "FROM scratch" >"$dir/Containerfile.$$"
	for f in "$@"; do
		echo "COPY $f /$f" >>"$dir/Containerfile.$$"
	done
	as alice podman build -q --timestamp 1767225600 --platform "$platform" \
		-f "$dir/Containerfile.$$" -t "$tag" "$dir" >/dev/null
}

