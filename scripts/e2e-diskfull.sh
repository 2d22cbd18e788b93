#!/usr/bin/env bash
# End-to-end test of a full disk (issue 11, finding 6): a real node whose
# data directory is a 300 MiB tmpfs, with --min-free-space 100MiB (so a
# 25 MiB floor), and real podman:
#  1. podman pushes 20 MiB images until the node refuses one: the push
#     fails with 507, the node's free space is at the reserve, not below
#     it, and the POST, monolithic POST and PATCH of an upload answer 507
#     with the OCI error envelope; /readyz stays 200 and shows the disk,
#     /metrics the free, total and reserve bytes and the refused writes,
#     and the log has the WARN exactly once;
#  2. inside the reserve a small metadata write (a new tag) still works;
#  3. another process fills the disk to the last byte: the node stays up
#     and ready, pulls work, a tag write answers 507 and deletions work;
#  4. once the filler is gone and images are deleted, garbage collection
#     frees their blobs, the log says uploads are accepted again (once),
#     and a push works;
#  5. every image acknowledged before is still pullable, intact.
# Needs root (mount), podman, curl and jq. The mount is removed on exit,
# also on failure.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/podman.sh"

[ "$(id -u)" -eq 0 ] || die "e2e-diskfull needs root to mount a tmpfs"
command -v jq >/dev/null || die "jq is not installed"

PORT=${E2E_PORT:-15261}
REG=localhost:$PORT
URL=http://127.0.0.1:$PORT
DATA=$WORK/node1
LOG=$WORK/node1.log
MIB=$((1024 * 1024))
RESERVE=$((100 * MIB))
LAYER=$((20 * MIB))
PASSED=0
PUSHED=() # images the node acknowledged, and their local IDs
IDS=()

pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }

# diskfull_cleanup stops the node, which holds the mount, unmounts it,
# and hands lib.sh's cleanup the script's status.
diskfull_cleanup() {
	local rc=$?
	set +e # (exit "$rc") below must not end the trap
	kill_node node1 KILL
	if mountpoint -q "$DATA"; then
		umount "$DATA" || umount -l "$DATA" || log "could not unmount $DATA"
	fi
	(exit "$rc")
	cleanup
}
trap diskfull_cleanup EXIT

# http METHOD PATH [curl args...]: a request as admin; prints the status,
# the body goes to $WORK/body and the headers to $WORK/headers.
http() {
	local method=$1 path=$2
	shift 2
	curl -sS --max-time 60 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
		-u "$ADMIN_USER:$WHARF_ADMIN_PASSWORD" -X "$method" "$@" "$URL$path" || true
}

# metric NAME: the value of a sample of /metrics, e.g.
# metric 'wharf_disk_refused_writes_total{reason="reserve"}'.
metric() {
	local v
	v=$(curl -fsS "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }')
	[ -n "$v" ] || die "/metrics has no $1"
	printf '%.0f\n' "$v"
}

log_count() { grep -c -- "$1" "$LOG" || true; }

# want_507 WHAT: the last response was a 507 with the OCI error envelope
# saying the disk is full.
want_507() {
	local what=$1 code=$2
	[ "$code" = 507 ] || die "$what answered $code, want 507: $(cat "$WORK/body")"
	[ "$(jq -r '.errors[0].code' "$WORK/body")" = INSUFFICIENT_STORAGE ] ||
		die "$what: the body is not an INSUFFICIENT_STORAGE error: $(cat "$WORK/body")"
	jq -r '.errors[0].message' "$WORK/body" | grep -q "disk is full" ||
		die "$what: the message does not say the disk is full: $(cat "$WORK/body")"
	grep -qi '^content-type: application/json' "$WORK/headers" || die "$what: the error is not JSON"
}

# push_image I: builds a one-layer 20 MiB image and pushes it as
# e2e/fill-I:v1; records it if the node acknowledged it. Returns podman's
# status; its stderr is in $WORK/push.err.
push_image() {
	local i=$1 local_tag=localhost/e2e/fill-$1:v1 remote=$REG/e2e/fill-$1:v1
	build_image "$local_tag" 1 "$LAYER"
	"${PODMAN[@]}" tag "$local_tag" "$remote"
	"${PODMAN[@]}" push -q "${TLS[@]}" "$remote" 2>"$WORK/push.err" || return 1
	PUSHED+=("$remote")
	IDS+=("$(image_id "$local_tag")")
}

# wait_disk WORDS TIMEOUT_S: waits until /readyz shows the disk's state
# containing WORDS.
wait_disk() {
	local want=$1 timeout=$2 body=
	for _ in $(seq 1 $((timeout * 10))); do
		body=$(curl -sS "$URL/readyz" || true)
		grep -q -- "$want" <<<"$body" && return 0
		sleep 0.1
	done
	die "/readyz did not show \"$want\" within ${timeout}s: $body"
}

build_wharf
mkdir -p "$DATA"
mount -t tmpfs -o size=300m wharf-e2e-diskfull "$DATA"
start_node node1 "$PORT" --min-free-space 100MiB --gc-grace 1s --gc-interval 1s
podman_login "$REG"

log "1. push 20 MiB images until the node refuses one"
# A session opened while there is room, for a PATCH once there is none.
code=$(http POST /v2/e2e/probe/blobs/uploads/)
[ "$code" = 202 ] || die "POST to start an upload answered $code"
session=$(tr -d '\r' <"$WORK/headers" | awk -F': ' 'tolower($1) == "location" { print $2 }')
refused=
for i in $(seq 1 20); do
	if ! push_image "$i"; then
		refused=$i
		break
	fi
done
[ -n "$refused" ] || die "20 pushes of 20 MiB fitted on a 300 MiB disk with a 100 MiB reserve"
[ "${#PUSHED[@]}" -ge 4 ] || die "only ${#PUSHED[@]} pushes went through before the node refused: it refused too early"
grep -q "507 Insufficient Storage" "$WORK/push.err" || die "the refused push did not fail with 507: $(cat "$WORK/push.err")"
pass "${#PUSHED[@]} pushes went through, push $refused failed: $(tail -n 1 "$WORK/push.err")"

free=$(metric wharf_disk_free_bytes)
[ "$free" -ge $((RESERVE - MIB)) ] || die "free space $free fell below the reserve $RESERVE"
[ "$free" -lt $((RESERVE + RESERVE / 4)) ] || die "free space $free is a quarter above the reserve, yet the push was refused"
pass "the node refused at the reserve: $((free / MIB)) MiB free, reserve $((RESERVE / MIB)) MiB"

want_507 "POST to start an upload" "$(http POST /v2/e2e/probe/blobs/uploads/)"
head -c 1024 /dev/urandom >"$WORK/small"
digest=sha256:$(sha256sum "$WORK/small" | cut -d' ' -f1)
want_507 "monolithic POST" "$(http POST "/v2/e2e/probe/blobs/uploads/?digest=$digest" --data-binary @"$WORK/small" -H 'Content-Type: application/octet-stream')"
want_507 "PATCH" "$(http PATCH "${session#"$URL"}" --data-binary @"$WORK/small" -H 'Content-Type: application/octet-stream')"
pass "POST, monolithic POST and PATCH answer 507 INSUFFICIENT_STORAGE with a message saying the disk is full"

code=$(curl -sS -o "$WORK/ready" -w '%{http_code}' "$URL/readyz")
[ "$code" = 200 ] || die "/readyz answered $code below the reserve, want 200: the node still serves pulls"
grep -q "^ready$" "$WORK/ready" || die "/readyz does not say ready: $(cat "$WORK/ready")"
grep -q "^disk: .* free of 300.0 MiB (reserve 100.0 MiB, floor 25.0 MiB): below the reserve: refusing uploads$" "$WORK/ready" ||
	die "/readyz does not show the disk: $(cat "$WORK/ready")"
pass "/readyz: $(tr '\n' ' ' <"$WORK/ready")"

[ "$(metric wharf_disk_total_bytes)" = $((300 * MIB)) ] || die "wharf_disk_total_bytes is not 300 MiB"
[ "$(metric wharf_disk_reserve_bytes)" = "$RESERVE" ] || die "wharf_disk_reserve_bytes is not 100 MiB"
[ "$(metric wharf_disk_full)" = 1 ] || die "wharf_disk_full is not 1 below the reserve"
refusals=$(metric 'wharf_disk_refused_writes_total{reason="reserve"}')
[ "$refusals" -ge 4 ] || die "wharf_disk_refused_writes_total{reason=\"reserve\"} is $refusals after 4 refusals"
pass "metrics: free $((free / MIB)) MiB, total 300 MiB, reserve 100 MiB, $refusals writes refused"

warnings=$(log_count "disk space is below the reserve")
[ "$warnings" = 1 ] || die "the log has $warnings warnings about the reserve after $refusals refusals, want 1"
grep "disk space is below the reserve" "$LOG" | grep -q 'level=WARN.*free=.*reserve="100.0 MiB"' ||
	die "the warning lacks its level or numbers: $(grep "below the reserve" "$LOG")"
[ "$(grep -c 'status=507' "$LOG" || true)" = 0 ] || die "refused requests were logged one by one"
pass "one WARN for $refusals refusals: $(grep "disk space is below the reserve" "$LOG" | cut -c1-160)"

log "2. small metadata writes inside the reserve"
accept="Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
code=$(http GET /v2/e2e/fill-1/manifests/v1 -H "$accept")
[ "$code" = 200 ] || die "GET manifest answered $code"
cp "$WORK/body" "$WORK/manifest-1"
manifest_type=$(tr -d '\r' <"$WORK/headers" | awk -F': ' 'tolower($1) == "content-type" { print $2 }')
code=$(http PUT /v2/e2e/fill-1/manifests/v2 -H "Content-Type: $manifest_type" --data-binary @"$WORK/manifest-1")
[ "$code" = 201 ] || die "a new tag inside the reserve answered $code: $(cat "$WORK/body")"
pass "a new tag for an existing manifest is accepted inside the reserve"

log "3. another process fills the disk to the last byte"
dd if=/dev/zero of="$DATA/filler" bs=1M status=none 2>/dev/null || true # stops at ENOSPC
[ "$(df --output=avail -B1 "$DATA" | tail -n 1 | tr -d ' ')" -lt "$MIB" ] || die "dd did not fill the tmpfs"
wait_disk "below the floor: accepting only deletions" 5
code=$(curl -sS -o /dev/null -w '%{http_code}' "$URL/readyz")
[ "$code" = 200 ] || die "/readyz answered $code on a full disk, want 200"
"${PODMAN[@]}" rmi -f "${PUSHED[1]}" >/dev/null
"${PODMAN[@]}" pull -q "${TLS[@]}" "${PUSHED[1]}" >/dev/null || die "pull of ${PUSHED[1]} failed on a full disk"
[ "$(image_id "${PUSHED[1]}")" = "${IDS[1]}" ] || die "${PUSHED[1]} came back changed"
want_507 "a new tag on a full disk" "$(http PUT /v2/e2e/fill-1/manifests/v3 -H "Content-Type: $manifest_type" --data-binary @"$WORK/manifest-1")"
code=$(http DELETE /v2/e2e/fill-1/manifests/v2)
[ "$code" = 202 ] || die "tag delete on a full disk answered $code: $(cat "$WORK/body")"
code=$(http GET /v2/e2e/fill-1/manifests/v2)
[ "$code" = 404 ] || die "the tag deleted on a full disk still answers $code"
kill -0 "${NODE_PIDS[node1]}" || die "the node died on a full disk"
[ "$(log_count "disk space is below the floor")" = 1 ] || die "want one WARN about the floor"
pass "on a full disk the node is up and ready, pulls, refuses a tag with 507 and deletes a tag"

log "4. free space: remove the filler, delete three images"
rm -f "$DATA/filler"
for i in 0 2 3; do
	repo=${PUSHED[$i]#"$REG"/}
	repo=${repo%:v1}
	code=$(http GET "/v2/$repo/manifests/v1" -H "$accept")
	[ "$code" = 200 ] || die "GET $repo manifest answered $code"
	mdigest=sha256:$(sha256sum "$WORK/body" | cut -d' ' -f1)
	blobs=$(jq -r '.config.digest, .layers[].digest' "$WORK/body")
	code=$(http DELETE "/v2/$repo/manifests/$mdigest")
	[ "$code" = 202 ] || die "DELETE $repo manifest answered $code: $(cat "$WORK/body")"
	for b in $blobs; do
		code=$(http DELETE "/v2/$repo/blobs/$b")
		[ "$code" = 202 ] || die "DELETE $repo blob $b answered $code: $(cat "$WORK/body")"
	done
done
wait_disk "accepting uploads" 60
[ "$(log_count "disk space is back above the reserve")" = 1 ] || die "want one INFO that uploads are accepted again"
grep "disk space is back above the reserve" "$LOG" | grep -q "level=INFO" || die "the recovery is not logged at INFO"
[ "$(metric wharf_disk_full)" = 0 ] || die "wharf_disk_full is not 0 after recovery"
for i in 0 2 3; do
	unset "PUSHED[$i]" "IDS[$i]"
done
PUSHED=("${PUSHED[@]}")
IDS=("${IDS[@]}")
push_image again || die "push after space was freed failed: $(cat "$WORK/push.err")"
pass "garbage collection freed the deleted images' blobs and a push works again"
[ "$(log_count "disk space is below the reserve")" = 1 ] || die "the WARN about the reserve was logged again"

log "5. every image acknowledged is still pullable"
for i in "${!PUSHED[@]}"; do
	"${PODMAN[@]}" rmi -f "${PUSHED[$i]}" >/dev/null 2>&1 || true
done
"${PODMAN[@]}" rmi -af >/dev/null 2>&1 || true
for i in "${!PUSHED[@]}"; do
	"${PODMAN[@]}" pull -q "${TLS[@]}" "${PUSHED[$i]}" >/dev/null || die "pull of ${PUSHED[$i]} failed"
	[ "$(image_id "${PUSHED[$i]}")" = "${IDS[$i]}" ] || die "${PUSHED[$i]} changed: $(image_id "${PUSHED[$i]}") != ${IDS[$i]}"
done
pass "all ${#PUSHED[@]} acknowledged images still pull with their image IDs"

kill_node node1 TERM
umount "$DATA"
mountpoint -q "$DATA" && die "the tmpfs is still mounted"
echo "e2e-diskfull: $PASSED passed, 0 failed"
