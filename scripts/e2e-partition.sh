#!/usr/bin/env bash
# End-to-end test of a network partition, with real network namespaces:
# three nodes, each in its own namespace, are wired by veth pairs to a
# bridge in a fourth namespace (10.77.0.0/24 exists only inside these
# namespaces; no traffic leaves the machine). The script pushes an image,
# cuts node 3's link and checks that
#  - node 3 stops being ready, refuses writes fast with 503 "no quorum",
#    refuses tag reads rather than answering stale, and still serves the
#    manifest by digest from its local state;
#  - the majority (nodes 1 and 2) keeps accepting writes;
#  - after the link comes back, node 3 is ready again and sees the tag
#    written during the partition.
# Needs root (ip netns), iproute2 and curl. Every namespace and process is
# removed on exit, also on failure.
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "e2e-partition needs root for ip netns"
command -v ip >/dev/null || die "ip (iproute2) is not installed"

P=wp$$                 # prefix of every namespace and interface we create
BR_NS=$P-br            # the "switch"
NS=("$P-n1" "$P-n2" "$P-n3")
IPS=(10.77.0.1 10.77.0.2 10.77.0.3)
NODES=(n1 n2 n3)
HTTP_PORT=5001
REPO=e2e/partition
PASSED=0

pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# in_node I CMD...: runs CMD inside node I's namespace.
in_node() { local i=$1; shift; ip netns exec "${NS[$i]}" "$@"; }

# http I METHOD PATH [curl args...]: a request to node I, from inside its
# own namespace through loopback, so it works while the node is cut off.
# Prints the status code; the body goes to $WORK/body, headers to
# $WORK/headers.
http() {
	local i=$1 method=$2 path=$3
	shift 3
	in_node "$i" curl -sS --max-time 20 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
		-u "$ADMIN_USER:$WHARF_ADMIN_PASSWORD" \
		-X "$method" "$@" "http://127.0.0.1:$HTTP_PORT$path" || true # curl prints 000 itself
}

header() { tr -d '\r' <"$WORK/headers" | awk -v h="$(echo "$1" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1) == h { print $2 }' | tail -n 1; }

# wait_status I PATH WANT TIMEOUT_S: polls GET PATH on node I until it
# answers WANT; prints the milliseconds it took, or dies.
wait_status() {
	local i=$1 path=$2 want=$3 timeout=$4 start code=
	start=$(now_ms)
	while [ $(($(now_ms) - start)) -lt $((timeout * 1000)) ]; do
		code=$(in_node "$i" curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT$path" || true)
		if [ "$code" = "$want" ]; then
			echo $(($(now_ms) - start))
			return 0
		fi
		sleep 0.1
	done
	die "node $((i + 1)): GET $path answered ${code:-nothing}, not $want, within ${timeout}s"
}

setup_network() {
	local i peer
	log "creating namespaces $BR_NS ${NS[*]}"
	ip netns add "$BR_NS"
	ip -n "$BR_NS" link set lo up
	ip -n "$BR_NS" link add br0 type bridge
	ip -n "$BR_NS" link set br0 up
	for i in 0 1 2; do
		ip netns add "${NS[$i]}"
		ip -n "${NS[$i]}" link set lo up
		peer=$P-s$((i + 1))
		# Created inside the node's namespace, so nothing appears in the
		# root namespace even for a moment.
		ip -n "${NS[$i]}" link add eth0 type veth peer name "$peer" netns "$BR_NS"
		ip -n "${NS[$i]}" addr add "${IPS[$i]}/24" dev eth0
		ip -n "${NS[$i]}" link set eth0 up
		ip -n "$BR_NS" link set "$peer" master br0
		ip -n "$BR_NS" link set "$peer" up
	done
}

# switch_port I up|down: the bridge side of node I's veth.
switch_port() { ip -n "$BR_NS" link set "$P-s$(($1 + 1))" "$2"; }

teardown_network() {
	local ns
	for ns in "${NS[@]}" "$BR_NS"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

on_exit() {
	local rc=$? name
	for name in "${!NODE_PIDS[@]}"; do
		kill_node "$name" KILL
	done
	teardown_network
	if [ "$rc" -ne 0 ]; then
		for name in "${NODES[@]}"; do
			[ -f "$WORK/$name.log" ] && { echo "--- $name.log (last 20 lines)" >&2; tail -n 20 "$WORK/$name.log" >&2; }
		done
		echo "e2e-partition: $PASSED passed, 1 failed"
	fi
	set +e
	(exit "$rc") # cleanup keeps $WORK when the script failed
	cleanup
}
trap on_exit EXIT

start_nodes() {
	local key i joins
	key=$("$WHARF" keygen)
	joins=$(printf '%s:5003,' "${IPS[@]}")
	joins=${joins%,}
	for i in 0 1 2; do
		# Not through in_node: $! must be the node itself (ip netns exec
		# execs it), not a subshell whose death would orphan it.
		ip netns exec "${NS[$i]}" "$WHARF" serve --data-dir "$WORK/${NODES[$i]}" --node-name "${NODES[$i]}" \
			--listen "0.0.0.0:$HTTP_PORT" --cluster-listen "${IPS[$i]}:5002" --gossip-listen "${IPS[$i]}:5003" \
			--advertise "${IPS[$i]}" --bootstrap-expect 3 --join "$joins" --cluster-key "$key" \
			--dead-node-timeout 10m --replicas 3 --write-quorum 2 \
			>>"$WORK/${NODES[$i]}.log" 2>&1 &
		NODE_PIDS[${NODES[$i]}]=$!
	done
}

# push_blob I FILE: monolithic upload of FILE through node I; prints its digest.
push_blob() {
	local i=$1 file=$2 d code
	d=sha256:$(sha256sum "$file" | cut -d' ' -f1)
	code=$(http "$i" POST "/v2/$REPO/blobs/uploads/?digest=$d" \
		-H 'Content-Type: application/octet-stream' --data-binary "@$file")
	[ "$code" = 201 ] || die "blob upload through node $((i + 1)): HTTP $code: $(cat "$WORK/body")"
	echo "$d"
}

# make_manifest NAME NOTE: writes an OCI image manifest for the pushed
# config and layer to $WORK/NAME.json; NOTE makes its digest unique.
make_manifest() {
	cat >"$WORK/$1.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CONFIG_DIGEST","size":$CONFIG_SIZE},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$LAYER_DIGEST","size":$LAYER_SIZE}],"annotations":{"note":"$2"}}
JSON
	echo "sha256:$(sha256sum "$WORK/$1.json" | cut -d' ' -f1)"
}

# put_manifest I NAME TAG: PUT $WORK/NAME.json as TAG through node I;
# prints the status code.
put_manifest() {
	http "$1" PUT "/v2/$REPO/manifests/$3" \
		-H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$WORK/$2.json"
}

build_wharf
setup_network
start_nodes

log "1. three nodes in three namespaces form one cluster"
for i in 0 1 2; do
	wait_status "$i" /readyz 200 60 >/dev/null
done
pass "all three nodes ready"

log "2. push an image through node 1, read it through node 3"
head -c 4096 /dev/urandom >"$WORK/layer"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/config"
LAYER_DIGEST=$(push_blob 0 "$WORK/layer") LAYER_SIZE=$(stat -c %s "$WORK/layer")
CONFIG_DIGEST=$(push_blob 0 "$WORK/config") CONFIG_SIZE=$(stat -c %s "$WORK/config")
V1=$(make_manifest v1 before)
code=$(put_manifest 0 v1 v1)
[ "$code" = 201 ] || die "manifest PUT through node 1: HTTP $code: $(cat "$WORK/body")"
code=$(http 2 GET "/v2/$REPO/manifests/v1" -H 'Accept: application/vnd.oci.image.manifest.v1+json')
[ "$code" = 200 ] && [ "$(header Docker-Content-Digest)" = "$V1" ] ||
	die "GET v1 through node 3: HTTP $code, digest $(header Docker-Content-Digest), want $V1"
# The blobs reach node 3 too (replicas 3), so it can serve them cut off.
code=$(http 2 GET "/v2/$REPO/blobs/$LAYER_DIGEST")
[ "$code" = 200 ] && cmp -s "$WORK/body" "$WORK/layer" || die "GET layer through node 3: HTTP $code"
pass "pushed $V1 through node 1; node 3 resolves v1 to it"

log "3. partition node 3: its switch port goes down"
switch_port 2 down
ms=$(wait_status 2 /readyz 503 10)
pass "node 3 /readyz answered 503 ${ms}ms after the partition"

log "4. a write through node 3 fails fast with 503 and says why"
V2=$(make_manifest v2 during)
start=$(now_ms)
code=$(put_manifest 2 v2 during)
took=$(($(now_ms) - start))
body=$(cat "$WORK/body")
[ "$code" = 503 ] || die "manifest PUT through cut-off node 3: HTTP $code after ${took}ms, want 503: $body"
[ "$took" -lt 5000 ] || die "the refused write through node 3 took ${took}ms, want < 5000"
echo "$body" | jq -e '.errors | length > 0 and (.[0].code | type == "string")' >/dev/null ||
	die "node 3's refusal is not an OCI error envelope: $body"
echo "$body" | jq -e '[.errors[].message] | any(test("quorum"; "i"))' >/dev/null ||
	die "node 3's refusal does not mention quorum: $body"
pass "write through node 3 refused in ${took}ms: $(echo "$body" | jq -c '.errors[0] | {code, message}')"

log "5. node 3 still serves immutable content, but no stale tags"
code=$(http 2 GET "/v2/$REPO/manifests/$V1" -H 'Accept: application/vnd.oci.image.manifest.v1+json')
[ "$code" = 200 ] || die "GET manifest by digest through node 3: HTTP $code: $(cat "$WORK/body")"
cmp -s "$WORK/body" "$WORK/v1.json" || die "node 3 served different bytes for $V1"
code=$(http 2 GET "/v2/$REPO/blobs/$LAYER_DIGEST")
[ "$code" = 200 ] && cmp -s "$WORK/body" "$WORK/layer" || die "GET layer through node 3: HTTP $code"
pass "node 3 serves $V1 and its layer by digest while cut off"
code=$(http 2 GET "/v2/$REPO/manifests/v1" -H 'Accept: application/vnd.oci.image.manifest.v1+json')
[ "$code" = 503 ] || die "GET by tag through cut-off node 3: HTTP $code, want 503 (a linearizable read must not answer from stale state)"
pass "node 3 refuses a tag read (503) instead of answering from stale state"

log "6. the majority goes on"
start=$(now_ms)
code=$(put_manifest 0 v2 during)
took=$(($(now_ms) - start))
[ "$code" = 201 ] || die "manifest PUT through node 1 during the partition: HTTP $code after ${took}ms: $(cat "$WORK/body")"
code=$(http 1 GET "/v2/$REPO/manifests/during" -H 'Accept: application/vnd.oci.image.manifest.v1+json')
[ "$code" = 200 ] && [ "$(header Docker-Content-Digest)" = "$V2" ] ||
	die "GET during through node 2: HTTP $code, digest $(header Docker-Content-Digest), want $V2"
pass "node 1 accepted tag 'during' ($V2) in ${took}ms; node 2 resolves it"

log "7. heal: node 3 catches up"
switch_port 2 up
ms=$(wait_status 2 /readyz 200 30)
pass "node 3 ready again ${ms}ms after the link came back"
code=$(http 2 GET "/v2/$REPO/manifests/during" -H 'Accept: application/vnd.oci.image.manifest.v1+json')
[ "$code" = 200 ] && [ "$(header Docker-Content-Digest)" = "$V2" ] && cmp -s "$WORK/body" "$WORK/v2.json" ||
	die "GET during through healed node 3: HTTP $code, digest $(header Docker-Content-Digest), want $V2"
code=$(put_manifest 2 v1 after)
[ "$code" = 201 ] || die "manifest PUT through healed node 3: HTTP $code: $(cat "$WORK/body")"
pass "node 3 resolves 'during' to $V2 and accepts writes again"

echo "e2e-partition: $PASSED passed, 0 failed"
