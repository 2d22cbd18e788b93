#!/usr/bin/env bash
# End-to-end test of mirrored repositories (issue 14) on three real nodes
# behind haproxy, with real podman and skopeo and the wharf CLI. The
# upstream is another wharf (a lone node, token auth) that podman pushes to.
#  1. wharf remote add + test; wharf mirror add with include/exclude globs
#     and a platform filter; wharf sync repo --wait; podman pulls the synced
#     images through haproxy with the upstream's digests; the index keeps its
#     upstream digest with only its linux/amd64 child; *-source and the
#     excluded tags stay upstream;
#  2. podman push into the mirror is refused with DENIED;
#  3. nothing changed upstream: the next sync fetches nothing (counted);
#     then a new tag, a moved tag and a deleted tag: only those move;
#  4. kill -9 of the node running a (rate-limited) job: the job finishes on
#     another node, attempt 2, and the result equals the upstream;
#  5. a mirror scheduled every minute, the leader killed right after it is
#     created: the new leader runs it when due, once;
#  6. a pull-through cache (wharf cache add hub): podman pulls an image the
#     registry never held through haproxy and gets the upstream's digest;
#     three podmans pulling another image at once through the three nodes
#     fetch each of its blobs from the upstream once in all (the nodes'
#     wharf_cache_blobs_fetched_total); a push into the cache is DENIED; a
#     tag moved upstream is followed once its TTL has passed.
# The CLI commands are echoed with their output, as a session, kept in
# $E2E_SYNC_SESSION.
#
#   E2E_SYNC_PORT   haproxy's port; the nodes use the next ones (default 16800)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/podman.sh"

BASE_PORT=${E2E_SYNC_PORT:-16800}
LB_PORT=$BASE_PORT
LB=localhost:$LB_PORT
NODES=(n1 n2 n3)
UP_PORT=$((BASE_PORT + 50))
UP=localhost:$UP_PORT
SESSION=${E2E_SYNC_SESSION:-${TMPDIR:-/tmp}/wharf-e2e-sync-session.log}
CLUSTER_FLAGS=(--dead-node-timeout 1h)
STARTED=$SECONDS
source "$(dirname "$0")/session.sh"

# digest_of REF: the manifest digest of REF (skopeo, as admin).
digest_of() { as admin skopeo inspect --raw --tls-verify=false "docker://$1" | sha256sum | sed 's/^/sha256:/; s/ .*//'; }
# job JSON FILTER: a field of the job wharf sync ... -o json printed.
job() { jq -r "(.job // .) | $2" <<<"$1"; }
# up_tags REPO: the upstream's tags of REPO, sorted, one line.
up_tags() { as admin skopeo list-tags --tls-verify=false "docker://$UP/$1" | jq -r '.Tags | sort | join(" ")'; }
lb_tags() { as admin skopeo list-tags --tls-verify=false "docker://$LB/$1" | jq -r '.Tags | sort | join(" ")'; }
# node_of ID: the index (0-2) of the node whose Raft ID is ID.
node_of() {
	local i
	for i in 0 1 2; do
		[ "$(node_id "$i")" = "$1" ] && { echo "$i"; return 0; }
	done
	return 1
}

build_wharf
PATH=$(dirname "$WHARF"):$PATH
export PATH
start_node upstream "$UP_PORT"
start_cluster
start_haproxy
mkdir -p "$WORK/home-admin"
N1=$(node_url 0)

say "# wharf e2e-sync session, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "# three nodes behind haproxy: http://$LB; the upstream: a lone wharf at http://$UP"
say "# wharf $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); the working directory is $WORK"
cd "$WORK"

section "0. logins; the upstream's images"
ok admin wharf login "http://$LB" -u admin --password-stdin <<<"$WHARF_ADMIN_PASSWORD"
# "upstream" is the upstream's admin, with a wharf login of its own.
mkdir -p "$WORK/home-upstream"
ok upstream wharf login "http://$UP" -u admin --password-stdin <<<"$WHARF_ADMIN_PASSWORD"
for reg in "$LB" "$UP" "localhost:$(node_port 0)" "localhost:$(node_port 1)" "localhost:$(node_port 2)"; do
	ok admin podman login --tls-verify=false -u admin --password-stdin "$reg" <<<"$WHARF_ADMIN_PASSWORD"
done
ctx=$WORK/ctx
mkdir -p "$ctx"
for f in base v1 v1b v2 v3 src amd64 arm64; do
	head -c 200000 /dev/urandom >"$ctx/$f.bin"
done
build "$UP/team/app:v1" "$ctx" linux/amd64 base.bin v1.bin
build "$UP/team/app:v2" "$ctx" linux/amd64 base.bin v2.bin
build "$UP/team/app:v1-source" "$ctx" linux/amd64 src.bin
build "$UP/team/app:old" "$ctx" linux/amd64 base.bin
build "$UP/team/app-amd64" "$ctx" linux/amd64 base.bin amd64.bin
build "$UP/team/app-arm64" "$ctx" linux/arm64 base.bin arm64.bin
for t in v1 v2 v1-source old; do
	ok admin podman push -q --tls-verify=false "$UP/team/app:$t"
done
ok admin podman manifest create "$UP/team/app:multi" "containers-storage:$UP/team/app-amd64" "containers-storage:$UP/team/app-arm64"
ok admin podman manifest push -q --all --tls-verify=false "$UP/team/app:multi" "docker://$UP/team/app:multi"
say "# upstream team/app: $(up_tags team/app)"
ok admin wharf remote add up "http://$UP" --username admin --password-stdin <<<"$WHARF_ADMIN_PASSWORD"

# ============================================================================
section "1. a remote, a mirrored repository, a sync, podman pulls"
ok admin wharf remote test up
ok admin wharf mirror add mirrors/app --remote up --upstream team/app --include 'v*' --include multi --exclude v2 --platform linux/amd64
ok admin wharf mirror show mirrors/app
ok admin wharf sync repo mirrors/app --wait
ok admin wharf repo show mirrors/app
[[ $OUT == *"mirror of up/team/app"* ]] || fail "wharf repo show does not say the repository mirrors up/team/app"
got=$(lb_tags mirrors/app)
[ "$got" = "multi v1" ] || fail "synced tags: '$got', want 'multi v1' (v2 and old excluded, v1-source never)"
check "tags here: $got (upstream: $(up_tags team/app))"
for t in v1 multi; do
	[ "$(digest_of "$LB/mirrors/app:$t")" = "$(digest_of "$UP/team/app:$t")" ] || fail "mirrors/app:$t has another digest than upstream"
done
check "v1 and multi keep their upstream digests"
ok admin podman pull -q --tls-verify=false "$LB/mirrors/app:v1"
ok admin podman pull -q --tls-verify=false --platform linux/amd64 "$LB/mirrors/app:multi"
arm=$(as admin skopeo inspect --raw --tls-verify=false "docker://$UP/team/app:multi" | jq -r '.manifests[] | select(.platform.architecture=="arm64") | .digest')
run admin skopeo inspect --raw --tls-verify=false "docker://$LB/mirrors/app@$arm"
[ "$RC" != 0 ] || fail "the linux/arm64 child of multi was synced despite --platform linux/amd64"
check "podman pulls v1 and multi (linux/amd64) through haproxy; the arm64 child stayed upstream"

# ============================================================================
section "2. pushing into the mirror is refused"
ok admin podman tag "$UP/team/app:v2" "$LB/mirrors/app:pushed"
fails nonzero admin podman push --tls-verify=false "$LB/mirrors/app:pushed"
[[ $ERR == *denied* || $ERR == *DENIED* ]] || fail "the refused push does not say denied"
[[ $ERR == *"mirrors up/team/app"* ]] || fail "the refused push does not name the upstream"
check "podman push: DENIED, naming the upstream"

# ============================================================================
section "3. incremental: nothing changed, then a new, a moved and a deleted tag"
QUIET=1 ok admin wharf sync repo mirrors/app --wait -o json
j=$OUT
say "# unchanged: $(job "$j" '.progress | {tagsTotal, tagsUnchanged, manifestsFetched, blobsFetched, upstreamRequests} | tostring')"
[ "$(job "$j" '.progress.manifestsFetched // 0')" = 0 ] && [ "$(job "$j" '.progress.blobsFetched // 0')" = 0 ] ||
	fail "a sync with nothing changed upstream fetched content"
[ "$(job "$j" '.progress.tagsUnchanged')" = "$(job "$j" '.progress.tagsTotal')" ] || fail "not every tag was unchanged"
check "nothing changed: no manifest, no blob fetched; $(job "$j" '.progress.upstreamRequests') upstream requests"
build "$UP/team/app:v3" "$ctx" linux/amd64 base.bin v3.bin
build "$UP/team/app:v1" "$ctx" linux/amd64 base.bin v1b.bin
ok admin podman push -q --tls-verify=false "$UP/team/app:v3"
ok admin podman push -q --tls-verify=false "$UP/team/app:v1"
ok upstream wharf --server "http://$UP" tag rm team/app:multi
QUIET=1 ok admin wharf sync repo mirrors/app --wait -o json
j=$OUT
say "# changed: $(job "$j" '.progress | {tagsTotal, tagsUnchanged, tagsDeleted, manifestsFetched, blobsFetched, bytesFetched, upstreamRequests} | tostring')"
[ "$(job "$j" '.progress.tagsDeleted')" = 1 ] || fail "the tag deleted upstream was not deleted here"
[ "$(job "$j" '.progress.manifestsFetched')" = 2 ] || fail "want 2 manifests fetched (v3, the moved v1)"
[ "$(job "$j" '.progress.blobsFetched')" = 4 ] || fail "want 4 blobs fetched (2 configs, 2 new layers; the base layer is here)"
got=$(lb_tags mirrors/app)
[ "$got" = "v1 v3" ] || fail "tags after the changes: '$got', want 'v1 v3'"
[ "$(digest_of "$LB/mirrors/app:v1")" = "$(digest_of "$UP/team/app:v1")" ] || fail "the moved v1 was not moved here"
check "only the changes moved: tags $got"

# ============================================================================
section "4. kill -9 of the node running a job"
build "$UP/team/many:t00" "$ctx" linux/amd64 base.bin v1.bin
ok admin podman push -q --tls-verify=false "$UP/team/many:t00"
for i in $(seq -w 1 23); do
	as admin podman tag "$UP/team/many:t00" "$UP/team/many:t$i"
	as admin podman push -q --tls-verify=false "$UP/team/many:t$i" >/dev/null
done
say "# upstream team/many: 24 tags"
ok admin wharf remote add slow "http://$UP" --username admin --rate-limit 4 --concurrency 1 --password-stdin <<<"$WHARF_ADMIN_PASSWORD"
ok admin wharf mirror add mirrors/many --remote slow --upstream team/many
ok admin wharf sync repo mirrors/many -o json
id=$(job "$OUT" .id)
for _ in $(seq 1 100); do
	QUIET=1 run admin wharf sync status "$id" -o json
	[ "$(job "$OUT" '.progress.tagsDone // 0')" -ge 3 ] && break
	sleep 0.2
done
node=$(job "$OUT" .node)
victim=$(node_of "$node") || fail "no node has ID $node"
say "# job $id runs on ${NODES[$victim]} ($node) at $(job "$OUT" '.progress.tagsDone')/$(job "$OUT" '.progress.tagsTotal') tags: kill -9"
kill_node "${NODES[$victim]}" KILL
other=$(node_url $(((victim + 1) % 3)))
for _ in $(seq 1 300); do
	QUIET=1 run admin wharf --server "$other" sync status "$id" -o json
	case $(job "$OUT" .state) in *QUEUED | *RUNNING) sleep 0.5 ;; *) break ;; esac
done
ok admin wharf --server "$other" sync status "$id"
j=$(as admin wharf --server "$other" sync status "$id" -o json)
[[ $(job "$j" .state) == *SUCCEEDED ]] || fail "job $id ended $(job "$j" .state)"
[ "$(job "$j" .attempt)" = 2 ] && [ "$(job "$j" .node)" != "$node" ] || fail "job $id was not moved to another node"
[ "$(as admin skopeo list-tags --tls-verify=false "docker://localhost:$(node_port $(((victim + 1) % 3)))/mirrors/many" | jq -r '.Tags | sort | join(" ")')" = "$(up_tags team/many)" ] ||
	fail "mirrors/many differs from the upstream after the kill"
check "the job finished on $(job "$j" .node), attempt 2: mirrors/many equals the upstream"
start_cluster_node "$victim"
wait_ready "${NODES[$victim]}" "$(node_port "$victim")"

# ============================================================================
section "5. the leader killed before a scheduled run: the run happens once"
ok admin wharf --server "$other" cluster status
leader=$(sed -n 's/^Leader: *\([^ ]*\) (.*$/\1/p' <<<"$OUT")
[ -n "$leader" ] || fail "no leader in wharf cluster status"
for li in 0 1 2; do [ "${NODES[$li]}" = "$leader" ] && break; done
q=$(node_url $(((li + 1) % 3))) # a node that stays
ok admin wharf --server "$q" mirror add mirrors/sched --remote up --upstream team/app --include v2 --schedule 1m
SCHED_CREATED=$SECONDS
say "# leader: $leader; mirrors/sched's first run is due in a minute: kill -9 of the leader now"
QUIET=1 ok admin wharf --server "$q" sync ls mirrors/sched -o json
[ "$(jq '.jobs | length' <<<"$OUT")" = 0 ] || fail "mirrors/sched ran before its schedule"
kill_node "$leader" KILL
for _ in $(seq 1 120); do
	QUIET=1 run admin wharf --server "$q" sync ls mirrors/sched -o json
	[ "$(jq '[.jobs[]? | select(.state | test("SUCCEEDED"))] | length' <<<"$OUT")" -ge 1 ] && break
	sleep 1
done
sleep 3 # a second scheduling would show by now
QUIET=1 ok admin wharf --server "$q" sync ls mirrors/sched -o json
n=$(jq '[.jobs[] | select(.trigger == "schedule")] | length' <<<"$OUT")
[ "$n" = 1 ] || fail "mirrors/sched: $n scheduled runs, want 1"
ok admin wharf --server "$q" sync ls mirrors/sched
check "one scheduled run of mirrors/sched after the leader's death, $((SECONDS - SCHED_CREATED))s after the mirror was created"

# ============================================================================
section "6. a pull-through cache"
start_cluster_node "$li"
wait_ready "$leader" "$(node_port "$li")"
# cache_metric NAME: NAME summed over the three nodes' /metrics.
cache_metric() {
	local i sum=0 v
	for i in 0 1 2; do
		v=$(curl -fsS -u "admin:$WHARF_ADMIN_PASSWORD" "$(node_url "$i")/metrics" | awk -v m="$1" '$1 == m { print $2 }')
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
for f in c1 c2 c3; do head -c 300000 /dev/urandom >"$ctx/$f.bin"; done
build "$UP/team/cached:v1" "$ctx" linux/amd64 c1.bin
build "$UP/team/cached:v2" "$ctx" linux/amd64 c2.bin c3.bin
for t in v1 v2; do
	ok admin podman push -q --tls-verify=false "$UP/team/cached:$t"
	as admin podman rmi -f "$UP/team/cached:$t" >/dev/null
done
ok admin wharf cache add hub --remote up --tag-ttl 5s
ok admin wharf cache ls
before=$(cache_metric wharf_cache_blobs_fetched_total)
ok admin podman pull -q --tls-verify=false "$LB/hub/team/cached:v1"
[ "$(digest_of "$LB/hub/team/cached:v1")" = "$(digest_of "$UP/team/cached:v1")" ] || fail "hub/team/cached:v1 has another digest than upstream"
fetched=$(($(cache_metric wharf_cache_blobs_fetched_total) - before))
[ "$fetched" = 2 ] || fail "the first pull fetched $fetched blobs upstream, want 2 (config, layer)"
check "podman pulls hub/team/cached:v1, never held here, through haproxy: the upstream's digest, $fetched blobs fetched"
before=$(cache_metric wharf_cache_blobs_fetched_total)
pids=()
for i in 0 1 2; do
	as admin podman --root "$WORK/podman-root-$i" --runroot "$WORK/podman-run-$i" pull -q --tls-verify=false "localhost:$(node_port "$i")/hub/team/cached:v2" >"$WORK/cache-pull-$i.log" 2>&1 &
	pids+=($!)
done
for i in 0 1 2; do wait "${pids[$i]}" || fail "concurrent pull $i through ${NODES[$i]}: $(cat "$WORK/cache-pull-$i.log")"; done
fetched=$(($(cache_metric wharf_cache_blobs_fetched_total) - before))
[ "$fetched" = 3 ] || fail "three concurrent pulls of v2 through three nodes fetched $fetched blobs upstream, want 3 (config, 2 layers), each once"
check "three podmans pulling hub/team/cached:v2 at once through n1, n2 and n3: $fetched blob fetches upstream for its 3 blobs"
ok admin podman tag "$LB/hub/team/cached:v1" "$LB/hub/team/cached:mine"
fails nonzero admin podman push --tls-verify=false "$LB/hub/team/cached:mine"
[[ $ERR == *"pull-through cache"* ]] || fail "the refused push does not name the cache"
check "podman push into the cache: DENIED"
build "$UP/team/cached:v1" "$ctx" linux/amd64 c3.bin c1.bin
ok admin podman push -q --tls-verify=false "$UP/team/cached:v1"
sleep 6
ok admin podman pull -q --tls-verify=false "$LB/hub/team/cached:v1"
[ "$(digest_of "$LB/hub/team/cached:v1")" = "$(digest_of "$UP/team/cached:v1")" ] || fail "the cache did not follow v1 after its TTL"
check "v1 moved upstream: after the 5s TTL the cache serves the new digest"

say ""
say "# e2e-sync passed in $((SECONDS - STARTED))s"
log "session: $SESSION"
