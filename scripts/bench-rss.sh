#!/usr/bin/env bash
# Measures a node's peak resident memory while a 1 GiB blob is pushed in a
# single PATCH, above its idle RSS. Goal: under 64 MiB.
source "$(dirname "$0")/lib.sh"

PORT=${BENCH_PORT:-15301}
SIZE_MIB=${SIZE_MIB:-1024}
BASE=http://127.0.0.1:$PORT

rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

build_wharf
blob=$WORK/blob
log "writing a ${SIZE_MIB} MiB test blob"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$blob"
digest=sha256:$(sha256sum "$blob" | cut -d' ' -f1)

start_node rss "$PORT"
pid=${NODE_PIDS[rss]}
AUTH=(-u "$ADMIN_USER:$WHARF_ADMIN_PASSWORD")
# Log in once before measuring: the password check (argon2id, 19 MiB) is
# then cached, and the push measures the blob path alone.
curl -fsS "${AUTH[@]}" -o /dev/null "$BASE/v2/"
sleep 1
idle=$(rss_kib "$pid" VmRSS)
# VmHWM is the peak since start; reset it to the current RSS first.
echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
hwm_before=$(rss_kib "$pid" VmHWM)

location=$(curl -fsS "${AUTH[@]}" -X POST -o /dev/null -w '%header{location}' "$BASE/v2/bench/rss/blobs/uploads/")
case $location in http*) ;; *) location=$BASE$location ;; esac
start=$(date +%s.%N)
location=$(curl -fsS "${AUTH[@]}" -X PATCH -H 'Content-Type: application/octet-stream' -T "$blob" \
	-o /dev/null -w '%header{location}' "$location")
case $location in http*) ;; *) location=$BASE$location ;; esac
sep='?'; case $location in *\?*) sep='&' ;; esac
curl -fsS "${AUTH[@]}" -X PUT -o /dev/null "$location${sep}digest=$digest"
end=$(date +%s.%N)
peak=$(rss_kib "$pid" VmHWM)

above=$(((peak - idle) / 1024))
printf 'rss: idle %d MiB, peak %d MiB (peak before push %d MiB), %d MiB above idle for a %d MiB PATCH in %.1fs\n' \
	$((idle / 1024)) $((peak / 1024)) $((hwm_before / 1024)) "$above" "$SIZE_MIB" "$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')"
