#!/usr/bin/env bash
# End-to-end test with real podman and skopeo against a real wharf node:
#  1. a multi-layer FROM-scratch image goes up with podman push, is removed
#     locally, comes back with podman pull and keeps its image ID;
#  2. the same round trip with skopeo copy;
#  3. the node is killed with SIGKILL in the middle of a large push and
#     restarted: the first image still pulls intact, every stored blob still
#     verifies, and pushing again succeeds.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/podman.sh"

PORT=${E2E_PORT:-15201}
REG=localhost:$PORT
# verify_blobs DATA_DIR: every stored blob hashes to its own name.
verify_blobs() {
	local dir=$1/blobs/blobs count=0 f alg want got
	[ -d "$dir" ] || die "no blob directory at $dir"
	while IFS= read -r -d '' f; do
		alg=$(basename "$(dirname "$(dirname "$f")")")
		want=$(basename "$f")
		case $alg in
		sha256) got=$(sha256sum "$f" | cut -d' ' -f1) ;;
		sha512) got=$(sha512sum "$f" | cut -d' ' -f1) ;;
		*) die "unexpected file in the blob store: $f" ;;
		esac
		[ "$got" = "$want" ] || die "corrupt blob $f: content hashes to $got"
		count=$((count + 1))
	done < <(find "$dir" -type f -print0)
	log "all $count stored blobs verify"
}

build_wharf
start_node node1 "$PORT"
podman_login "$REG"

log "1. podman round trip of a multi-layer image"
build_image localhost/e2e/multi:v1 3 200000
round_trip_podman localhost/e2e/multi:v1 "$REG/e2e/multi:v1"

log "2. skopeo round trip"
build_image localhost/e2e/viaskopeo:v1 2 100000
before=$(image_id localhost/e2e/viaskopeo:v1)
skopeo copy -q --dest-tls-verify=false \
	"containers-storage:[vfs@$WORK/podman-root+$WORK/podman-run]localhost/e2e/viaskopeo:v1" \
	"docker://$REG/e2e/viaskopeo:v1"
"${PODMAN[@]}" rmi -f localhost/e2e/viaskopeo:v1 >/dev/null
skopeo copy -q --src-tls-verify=false "docker://$REG/e2e/viaskopeo:v1" \
	"containers-storage:[vfs@$WORK/podman-root+$WORK/podman-run]localhost/e2e/viaskopeo:v1"
after=$(image_id localhost/e2e/viaskopeo:v1)
[ "$before" = "$after" ] || die "skopeo round trip changed the image ID: $before -> $after"
log "skopeo copy up and down kept image ID ${after:0:12}"

log "3. kill -9 during a large push"
build_image localhost/e2e/large:v1 1 $((400 * 1024 * 1024))
"${PODMAN[@]}" tag localhost/e2e/large:v1 "$REG/e2e/large:v1"
"${PODMAN[@]}" push "${TLS[@]}" "$REG/e2e/large:v1" >"$WORK/large-push.log" 2>&1 &
push_pid=$!
# Wait until the layer is streaming into an upload session, then kill.
for _ in $(seq 1 600); do
	bytes=$(du -sb "$WORK/node1/blobs/uploads" 2>/dev/null | cut -f1 || echo 0)
	[ "${bytes:-0}" -gt $((32 * 1024 * 1024)) ] && break
	sleep 0.05
done
[ "${bytes:-0}" -gt $((32 * 1024 * 1024)) ] || die "the large push never reached the node (uploads: ${bytes:-0} bytes)"
kill_node node1 KILL
log "killed the node with ${bytes} bytes of the upload received"
if wait "$push_pid"; then die "the push survived the node's death, so nothing was interrupted"; fi

start_node node1 "$PORT"
verify_blobs "$WORK/node1"
first=$(image_id "$REG/e2e/multi:v1")
"${PODMAN[@]}" rmi -f "$REG/e2e/multi:v1" >/dev/null
"${PODMAN[@]}" pull -q "${TLS[@]}" "$REG/e2e/multi:v1" >/dev/null
[ "$(image_id "$REG/e2e/multi:v1")" = "$first" ] || die "the first image changed after the crash"
log "the first image still pulls intact after the crash"
round_trip_podman localhost/e2e/large:v1 "$REG/e2e/large:v1"
verify_blobs "$WORK/node1"

echo "e2e-podman: 3 passed, 0 failed"
