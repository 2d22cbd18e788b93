#!/usr/bin/env bash
# End-to-end test of image management (issue 13) on three real nodes behind
# haproxy, with short garbage-collection settings, real podman, skopeo and
# cosign, and the wharf CLI (repo, image, tag, activity):
#  1. podman pushes manage/app:v1 (also tagged latest) and manage/app:v2, a
#     base image manage/base:v1 whose layer both share, and an index
#     manage/multi:v1 of linux/amd64 and linux/arm64 images that share it too;
#  2. cosign signs manage/app:v2 with a key pair made here, without any
#     transparency log, and wharf repo show reports the repository signed
#     (without cosign: a signature-shaped referrer pushed with curl, and the
#     log says so loudly);
#  3. wharf tag rm through one node: the tag no longer pulls, the digest does;
#  4. wharf image rm through another: the digest no longer pulls, and after
#     garbage collection the image's unique blobs are gone from every node's
#     disk while the blobs it shared stay on their holders;
#  5. description and readme (markdown with unicode) round trip byte for byte;
#  6. wharf activity -o json lists every step, newest first, with its actor
#     and the node it went through;
#  7. exit codes: 3 for an unknown tag, 4 for a non-admin's repo rm, 2 for a
#     bad tag name, with the rule in the message.
# The CLI commands are echoed with their output, as a session; a copy of the
# session is kept in $E2E_MANAGE_SESSION (printed at the end).
#
#   E2E_MANAGE_PORT     haproxy's port; nodes use the next ones (default 15800)
#   E2E_MANAGE_SIGNER   cosign (default: cosign if it can be had) or fallback
#   COSIGN_VERSION      the cosign built when none is on PATH or cached
#   COSIGN_BUILD_TIMEOUT  seconds the one-time cosign build may take (1200)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/podman.sh"

BASE_PORT=${E2E_MANAGE_PORT:-15800}
LB_PORT=$BASE_PORT
LB=localhost:$LB_PORT
NODES=(n1 n2 n3)
NS=manage
GC_GRACE=3s
GC_INTERVAL=1s
SESSION=${E2E_MANAGE_SESSION:-${TMPDIR:-/tmp}/wharf-e2e-manage-session.log}
ALICE_PASSWORD=alice-e2e-password-1
COSIGN_VERSION=${COSIGN_VERSION:-v2.6.5}
COSIGN_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/wharf-e2e
STARTED=$SECONDS
CLUSTER_FLAGS=(--gc-grace "$GC_GRACE" --gc-interval "$GC_INTERVAL")
source "$(dirname "$0")/session.sh"

# --- cosign: on PATH, cached, or built once with the Go module proxy ---

find_cosign() {
	COSIGN=
	if [ "${E2E_MANAGE_SIGNER:-}" = fallback ]; then
		NO_COSIGN="E2E_MANAGE_SIGNER=fallback asked for the fallback"
		return 0
	fi
	log "finding cosign (scripts/cosign.sh: on PATH, cached, or built once)"
	if ! COSIGN=$(COSIGN_VERSION=$COSIGN_VERSION "$(dirname "$0")/cosign.sh"); then
		COSIGN=
		NO_COSIGN="cosign is not on PATH nor in $COSIGN_CACHE, and scripts/cosign.sh could not build $COSIGN_VERSION (log: $COSIGN_CACHE/build.log)"
		log "$NO_COSIGN"
	fi
	if [ -n "$COSIGN" ] && ! "$COSIGN" version >/dev/null 2>&1; then
		NO_COSIGN="$COSIGN does not run"
		log "$NO_COSIGN"
		COSIGN=
	fi
	return 0
}

# --- blobs on disk ---

# blob_file I DIGEST: where node I keeps blob DIGEST (see blobstore).
blob_file() {
	local hex=${2#sha256:}
	echo "$(node_dir "$1")/blobs/blobs/sha256/${hex:0:2}/$hex"
}

# holders DIGEST: the nodes that have DIGEST's file, as "n1 n3".
holders() {
	local i out=()
	for i in 0 1 2; do
		[ -f "$(blob_file "$i" "$1")" ] && out+=("${NODES[$i]}")
	done
	echo "${out[*]}"
}

# manifest_of REF: the raw manifest of REF (skopeo, as alice).
manifest_of() { as alice skopeo inspect --raw --tls-verify=false "docker://$1"; }
# blobs_of MANIFEST: its config and layer digests, one a line.
blobs_of() { jq -r '.config.digest, .layers[].digest' <<<"$1"; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# ============================================================================

build_wharf
find_cosign
PATH=$(dirname "$WHARF"):$PATH
export PATH
start_cluster
start_haproxy
mkdir -p "$WORK/home-admin" "$WORK/home-alice" "$WORK/docker-alice"
N1=$(node_url 0) N2=$(node_url 1) N3=$(node_url 2)

say "# wharf e2e-manage session, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "# three nodes behind haproxy: http://$LB (haproxy), n1 $N1, n2 $N2, n3 $N3"
say "# garbage collection: --gc-grace $GC_GRACE --gc-interval $GC_INTERVAL"
say "# wharf $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); the working directory is $WORK"
say "# podman runs with --storage-driver=vfs and its storage in the working directory (not shown)"
cd "$WORK"

section "0. logins: admin creates alice, a publisher"
ok admin wharf login "http://$LB" -u admin --password-stdin <<<"$WHARF_ADMIN_PASSWORD"
ID1=$(node_id 0) ID2=$(node_id 1) ID3=$(node_id 2)
if [ -z "$ID1" ] || [ -z "$ID2" ] || [ -z "$ID3" ]; then fail "no node IDs from wharf status"; fi
say "# node IDs: n1 $ID1, n2 $ID2, n3 $ID3"
ok admin wharf user create alice --password-stdin <<<"$ALICE_PASSWORD"
ok admin wharf role grant publisher --user alice
ok alice wharf login "http://$LB" -u alice --password-stdin <<<"$ALICE_PASSWORD"
ok alice wharf --server "$N2" whoami
for reg in "$LB" "localhost:$(node_port 0)" "localhost:$(node_port 1)" "localhost:$(node_port 2)"; do
	ok alice podman login --tls-verify=false -u alice --password-stdin "$reg" <<<"$ALICE_PASSWORD"
done
# cosign (go-containerregistry) reads Docker's config; the same logins.
cp "$REGISTRY_AUTH_FILE" "$WORK/docker-alice/config.json"

# ============================================================================
section "1. push: manage/base:v1, manage/app:v1 (+latest) and :v2, the index manage/multi:v1"
ctx=$WORK/ctx
mkdir -p "$ctx"
for f in shared app1 app2 amd64 arm64; do
	head -c 300000 /dev/urandom >"$ctx/$f.bin"
done
build localhost/$NS/base:v1 "$ctx" linux/amd64 shared.bin
build localhost/$NS/app:v1 "$ctx" linux/amd64 shared.bin app1.bin
build localhost/$NS/app:v2 "$ctx" linux/amd64 shared.bin app2.bin
build localhost/$NS/multi-amd64 "$ctx" linux/amd64 shared.bin amd64.bin
build localhost/$NS/multi-arm64 "$ctx" linux/arm64 shared.bin arm64.bin
as alice podman manifest create localhost/$NS/multi:v1 >/dev/null
as alice podman manifest add localhost/$NS/multi:v1 containers-storage:localhost/$NS/multi-amd64 >/dev/null
as alice podman manifest add localhost/$NS/multi:v1 containers-storage:localhost/$NS/multi-arm64 >/dev/null

ok alice podman push -q --tls-verify=false localhost/$NS/base:v1 "$LB/$NS/base:v1"
ok alice podman push -q --tls-verify=false localhost/$NS/app:v1 "localhost:$(node_port 0)/$NS/app:v1"
ok alice podman push -q --tls-verify=false localhost/$NS/app:v1 "$LB/$NS/app:latest"
ok alice skopeo copy -q --dest-tls-verify=false \
	"containers-storage:[vfs@$WORK/podman-root+$WORK/podman-run]localhost/$NS/app:v2" "docker://$LB/$NS/app:v2"
ok alice podman manifest push -q --all --tls-verify=false localhost/$NS/multi:v1 "docker://$LB/$NS/multi:v1"

V1_MANIFEST=$(manifest_of "$LB/$NS/app:v1")
V1=sha256:$(sha "$V1_MANIFEST")
V2_MANIFEST=$(manifest_of "$LB/$NS/app:v2")
V2=sha256:$(sha "$V2_MANIFEST")
BASE_MANIFEST=$(manifest_of "$LB/$NS/base:v1")
INDEX=$(manifest_of "$LB/$NS/multi:v1")
[ "$(sha "$(manifest_of "$LB/$NS/app:latest")")" = "${V1#sha256:}" ] || fail "app:latest is not app:v1"
ok alice wharf --server "$N1" ns show $NS
ok alice wharf --server "$N2" repo ls --namespace $NS
for r in app base multi; do
	grep -q "^$NS/$r " <<<"$OUT" || fail "wharf repo ls does not list $NS/$r"
done
check "the namespace $NS, created by alice's first push, holds app, base and multi"
ok alice wharf --server "$N3" image ls $NS/app
ok alice wharf --server "$N2" image ls $NS/multi
ok alice wharf image show "$NS/multi:v1"
[ "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | sort | join(",")' <<<"$INDEX")" = linux/amd64,linux/arm64 ] ||
	fail "manage/multi:v1 is not an index of linux/amd64 and linux/arm64"
check "manage/multi:v1 is an index of linux/amd64 and linux/arm64"

# What v1 shares and what is its own: its config and layers that no other
# image (v2, base, the index's children) lists.
others=$(
	blobs_of "$V2_MANIFEST"
	blobs_of "$BASE_MANIFEST"
	for d in $(jq -r '.manifests[].digest' <<<"$INDEX"); do
		blobs_of "$(manifest_of "$LB/$NS/multi@$d")"
	done
)
mapfile -t OTHERS < <(sort -u <<<"$others")
UNIQUE=() SHARED=()
for d in $(blobs_of "$V1_MANIFEST"); do
	if grep -qx "$d" <<<"$others"; then SHARED+=("$d"); else UNIQUE+=("$d"); fi
done
[ ${#UNIQUE[@]} -ge 2 ] || fail "app:v1 has ${#UNIQUE[@]} unique blobs, want its config and a layer"
[ ${#SHARED[@]} -ge 1 ] || fail "app:v1 shares no layer with manage/base and manage/multi"
SHARED_LAYER=${SHARED[0]}
grep -qx "$SHARED_LAYER" <<<"$(blobs_of "$BASE_MANIFEST")" || fail "the shared layer is not manage/base's"
declare -A HELD=()
for d in "${UNIQUE[@]}" "${OTHERS[@]}"; do
	HELD[$d]=$(holders "$d")
	[ -n "${HELD[$d]}" ] || fail "no node holds blob $d on disk"
done
check "app:v1 ($V1) has ${#UNIQUE[@]} blobs of its own: ${UNIQUE[*]}"
check "it shares ${SHARED[*]} with manage/base, manage/app:v2 and both platforms of manage/multi"
for d in "${UNIQUE[@]}" "${SHARED[@]}"; do
	check "blob $d is on disk on: ${HELD[$d]}"
done

# ============================================================================
section "2. sign manage/app:v2"
if [ -n "$COSIGN" ]; then
	say "# cosign: $("$COSIGN" version 2>&1 | sed -n 's/^GitVersion: *//p') ($COSIGN)"
	ok alice cosign generate-key-pair
	ok alice cosign sign --key cosign.key --tlog-upload=false --yes \
		--allow-insecure-registry --allow-http-registry "$LB/$NS/app@$V2"
	ok alice cosign verify --key cosign.pub --insecure-ignore-tlog=true --offline=true \
		--allow-insecure-registry --allow-http-registry "localhost:$(node_port 2)/$NS/app@$V2"
	SIG_TAG=sha256-${V2#sha256:}.sig
	ok alice wharf --server "$N1" image show "$NS/app:$SIG_TAG"
	check "cosign signed $NS/app@$V2 (tag $SIG_TAG)"
else
	say "#"
	say "# !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	say "# !!! NO COSIGN: $NO_COSIGN."
	say "# !!! FALLBACK: a signature-shaped referrer"
	say "# !!! (artifactType application/vnd.dev.cosign.artifact.sig.v1+json, subject"
	say "# !!! app:v2) is pushed with curl and an openssl ECDSA signature. This is NOT cosign."
	say "# !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	say "#"
	# push_blob FILE MEDIA: uploads FILE to manage/app through haproxy
	# (POST, then PUT with the digest) and prints its descriptor.
	push_blob() {
		local file=$1 media=$2 d size loc
		d=sha256:$(sha256sum "$file" | cut -d' ' -f1)
		size=$(stat -c %s "$file")
		loc=$(curl -fsS -u "alice:$ALICE_PASSWORD" -X POST -D - -o /dev/null "http://$LB/v2/$NS/app/blobs/uploads/" |
			tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
		[ -n "$loc" ] || fail "no upload location"
		case $loc in /*) loc=http://$LB$loc ;; esac
		case $loc in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
		curl -fsS -u "alice:$ALICE_PASSWORD" -X PUT -H 'Content-Type: application/octet-stream' \
			--data-binary "@$file" "$loc" >/dev/null || fail "upload of $file failed"
		jq -cn --arg m "$media" --arg d "$d" --argjson s "$size" '{mediaType: $m, digest: $d, size: $s}'
	}
	jq -cn --arg ref "$LB/$NS/app" --arg d "$V2" \
		'{critical: {identity: {"docker-reference": $ref}, image: {"docker-manifest-digest": $d}, type: "cosign container image signature"}, optional: null}' \
		>"$WORK/payload.json"
	printf '{}' >"$WORK/empty.json"
	openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/fallback.key" 2>/dev/null
	sig=$(openssl dgst -sha256 -sign "$WORK/fallback.key" "$WORK/payload.json" | base64 -w0)
	cfg=$(push_blob "$WORK/empty.json" application/vnd.oci.empty.v1+json)
	layer=$(push_blob "$WORK/payload.json" application/vnd.dev.cosign.simplesigning.v1+json)
	jq -cn --argjson c "$cfg" --argjson l "$layer" --arg sig "$sig" --arg d "$V2" --argjson s "$(printf '%s' "$V2_MANIFEST" | wc -c)" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		  artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", config: $c,
		  layers: [$l + {annotations: {"dev.cosignproject.cosign/signature": $sig}}],
		  subject: {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s}}' >"$WORK/sig-manifest.json"
	SIG=sha256:$(sha256sum "$WORK/sig-manifest.json" | cut -d' ' -f1)
	printf 'user = "alice:%s"\n' "$ALICE_PASSWORD" >alice.curlrc
	ok alice curl -fsS -K alice.curlrc -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		--data-binary @sig-manifest.json "http://$LB/v2/$NS/app/manifests/$SIG"
	ok alice wharf --server "$N1" image show "$NS/app@$V2"
	[[ $OUT == *"1 signature"* ]] || fail "app:v2 does not list the signature among its referrers"
	check "FALLBACK (not cosign): a signature referrer $SIG of $NS/app@$V2, listed as its signature"
fi
ok alice wharf --server "$N2" repo show $NS/app
[[ $OUT == *"Signed:"*true* ]] || fail "wharf repo show does not report $NS/app signed"
QUIET=1 run alice wharf --server "$N3" repo show $NS/app -o json
[ "$(jq -r .signed <<<"$OUT")" = true ] || fail "wharf repo show -o json: signed is not true"
check "wharf repo show reports $NS/app signed (table through n2, JSON through n3)"
ok alice wharf --server "$N3" repo show $NS/base
[[ $OUT == *"Signed:"*false* ]] || fail "manage/base is reported signed"
check "and manage/base, which no one signed, unsigned"

# ============================================================================
section "3. untag manage/app:latest through n2; read it through n3 and haproxy"
ok alice wharf --server "$N1" tag add $NS/app:v1 stable
QUIET=1 ok alice wharf --server "$N3" image show $NS/app:stable -o json
[ "$(jq -r .image.digest <<<"$OUT")" = "$V1" ] || fail "app:stable read through n3 is not v1"
check "a tag added through n1 reads through n3"
ok alice wharf --server "$N2" tag add $NS/app:v2 stable
[[ $OUT == *"moved from $V1 to $V2"* ]] || fail "tag add did not report the move"
ok alice wharf --server "$N2" tag rm $NS/app:latest
ok alice wharf --server "$N3" image show "$NS/app@$V1"
[[ $OUT == *"Tags:"*v1* && $OUT != *latest* ]] || fail "app@v1 still lists latest, or lost v1"
as alice podman rmi -f "$LB/$NS/app:latest" "localhost:$(node_port 0)/$NS/app:v1" >/dev/null 2>&1 || true
fails nonzero alice podman pull -q --tls-verify=false "$LB/$NS/app:latest"
[[ $ERR == *"manifest unknown"* ]] || fail "the pull of app:latest failed otherwise than 'manifest unknown'"
fails nonzero alice podman pull -q --tls-verify=false "localhost:$(node_port 2)/$NS/app:latest"
check "app:latest no longer pulls, through haproxy or through n3"
ok alice podman pull -q --tls-verify=false "localhost:$(node_port 2)/$NS/app@$V1"
ok alice podman pull -q --tls-verify=false "$LB/$NS/app@$V1"
check "app@$V1 still pulls by digest, through n3 and through haproxy"

# ============================================================================
section "4. delete manage/app@v1 through n3 (admin); garbage collection"
ok admin wharf --server "$N3" image rm "$NS/app@$V1"
deleted_at=$SECONDS
as alice podman rmi -f "$LB/$NS/app@$V1" "localhost:$(node_port 2)/$NS/app@$V1" >/dev/null 2>&1 || true
fails nonzero alice podman pull -q --tls-verify=false "$LB/$NS/app@$V1"
fails nonzero alice podman pull -q --tls-verify=false "localhost:$(node_port 0)/$NS/app@$V1"
fails nonzero alice podman pull -q --tls-verify=false "localhost:$(node_port 0)/$NS/app:v1"
fails 3 alice wharf --server "$N1" image show "$NS/app@$V1"
check "app@$V1 no longer pulls (haproxy, n1), and its tag v1 went with it"
ok alice wharf --server "$N1" image ls $NS/app
ok alice podman pull -q --tls-verify=false "localhost:$(node_port 1)/$NS/app:v2"
ok alice podman pull -q --tls-verify=false "localhost:$(node_port 1)/$NS/base:v1"
check "app:v2 and base:v1, which share its layer, still pull"

say "# waiting for garbage collection (--gc-grace $GC_GRACE, --gc-interval $GC_INTERVAL) to delete the unique blobs on every node"
while :; do
	left=()
	for d in "${UNIQUE[@]}"; do
		h=$(holders "$d")
		[ -z "$h" ] || left+=("$d on $h")
	done
	[ ${#left[@]} -eq 0 ] && break
	[ $((SECONDS - deleted_at)) -lt 60 ] || fail "60s after the delete, still on disk: ${left[*]}"
	sleep 0.5
done
check "within $((SECONDS - deleted_at))s of the delete, every node's disk lost app:v1's own blobs:"
for d in "${UNIQUE[@]}"; do
	for i in 0 1 2; do
		f=$(blob_file "$i" "$d")
		[ ! -e "$f" ] || fail "$f is still there"
	done
	check "  $d (was on ${HELD[$d]}): gone from n1, n2 and n3"
done
# Give collection a few more rounds to get the shared blobs wrong.
sleep 3
n_kept=0
for d in "${OTHERS[@]}"; do
	[ "$(holders "$d")" = "${HELD[$d]}" ] || fail "blob $d was on ${HELD[$d]}, now on '$(holders "$d")'"
	n_kept=$((n_kept + 1))
done
check "the shared layer ${SHARED[*]} is still on ${HELD[$SHARED_LAYER]}, and so are the other $((n_kept - 1)) blobs of app:v2, base:v1 and multi:v1's platforms on their holders"
ok alice podman pull -q --tls-verify=false "localhost:$(node_port 2)/$NS/multi:v1"
check "manage/multi:v1 still pulls"

# ============================================================================
section "5. description and readme"
DESCRIPTION="The e2e app — für Tests, 日本語もOK ✓"
ok alice wharf --server "$N1" repo describe $NS/app "$DESCRIPTION"
QUIET=1 ok alice wharf --server "$N2" repo show $NS/app -o json
[ "$(jq -r .repository.description <<<"$OUT")" = "$DESCRIPTION" ] || fail "the description read through n2 differs"
check "the description set through n1 reads back the same through n2"
cat >"$WORK/README.md" <<'MD'
# manage/app 🐳

Ein Beispiel für *wharf* — «readme» round trip.

| Sprache  | Gruß         |
|----------|--------------|
| 日本語   | こんにちは   |
| עברית    | שלום         |
| Emoji    | 🚢🔏✅        |

```sh
podman pull localhost/manage/app:v2	# a tab, and trailing spaces   
```

Combining: é (e + U+0301), zero-width joiner: 👩‍💻
MD
printf 'no newline at the end: ∎' >>"$WORK/README.md"
cp "$WORK/README.md" "$WORK/README.sent.md"
ok alice wharf --server "$N2" repo readme set $NS/app README.md
ok alice wharf --server "$N3" repo readme get $NS/app
as alice wharf --server "$N3" repo readme get $NS/app >"$WORK/README.got.md"
cmp "$WORK/README.sent.md" "$WORK/README.got.md" || fail "the readme read through n3 differs from the file sent through n2"
as alice wharf --server "http://$LB" repo readme get $NS/app | cmp - "$WORK/README.sent.md" ||
	fail "the readme read through haproxy differs"
check "readme get returns the same $(stat -c %s "$WORK/README.sent.md") bytes (n3 and haproxy) that readme set sent (n2)"
printf '# short\n' >"$WORK/README2.md"
ok alice wharf --server "http://$LB" repo readme set $NS/app - <README2.md
as alice wharf --server "$N1" repo readme get $NS/app | cmp - "$WORK/README2.md" || fail "the readme from stdin differs"
ok alice wharf --server "$N2" repo readme set $NS/app README.md
check "a readme from stdin replaces it, and the file's again replaces that"
ok alice wharf --server "$N1" repo show $NS/app

# ============================================================================
section "6. activity of manage/app, newest first"
ok alice wharf activity $NS/app
QUIET=1 ok alice wharf --server "$N2" activity $NS/app -o json
ACTIVITY=$OUT
# The events, newest first, as "KIND actor node tag digest".
got=$(jq -r '.activity[] | [(.kind | sub("ACTIVITY_KIND_"; "")), .actor, .nodeId, (.tag // "-"), (.digest // "-")] | join(" ")' <<<"$ACTIVITY")
printf '%s\n' "$got" >"$WORK/activity.got"
jq -e '[.activity[].seq | tonumber] | . == (sort | reverse) and (unique | length) == length' <<<"$ACTIVITY" >/dev/null ||
	fail "activity is not newest first (seq descending)"
jq -e '[.activity[].unixNanos | tonumber] | . == (sort | reverse)' <<<"$ACTIVITY" >/dev/null ||
	fail "activity times are not newest first"
check "activity is newest first: seq and time descending"
# want: what this script did to manage/app, oldest first, with the node
# it went through ("*" where haproxy chose); each line "KIND actor node tag".
want=$(
	cat <<EOF
MANIFEST_ADDED alice $ID1 - $V1
TAG_ADDED alice $ID1 v1 $V1
TAG_ADDED alice * latest $V1
MANIFEST_ADDED alice * - $V2
TAG_ADDED alice * v2 $V2
EOF
	if [ -n "$COSIGN" ]; then
		echo "MANIFEST_ADDED alice * - *"
		echo "TAG_ADDED alice * $SIG_TAG *"
	else
		echo "MANIFEST_ADDED alice * - $SIG"
	fi
	cat <<EOF
TAG_ADDED alice $ID1 stable $V1
TAG_MOVED alice $ID2 stable $V2
TAG_REMOVED alice $ID2 latest $V1
TAG_REMOVED admin $ID3 v1 $V1
MANIFEST_REMOVED admin $ID3 - $V1
DESCRIPTION_SET alice $ID1 - -
README_SET alice $ID2 - -
README_SET alice * - -
README_SET alice $ID2 - -
EOF
)
want=$(tac <<<"$want")
printf '%s\n' "$want" >"$WORK/activity.want"
n_got=$(wc -l <"$WORK/activity.got") n_want=$(wc -l <"$WORK/activity.want")
[ "$n_got" = "$n_want" ] || fail "activity has $n_got events, want $n_want: see $WORK/activity.got and .want"
while IFS='|' read -r w g; do
	read -r wk wa wn wt wd <<<"$w"
	read -r gk ga gn gt gd <<<"$g"
	[ "$wk $wa $wt" = "$gk $ga $gt" ] || fail "activity: got '$gk $ga $gt', want '$wk $wa $wt'"
	[ "$wn" = "*" ] || [ "$wn" = "$gn" ] || fail "activity: $gk $gt went through $gn, want $wn"
	[ "$wd" = "*" ] || [ "$wd" = "$gd" ] || fail "activity: $gk $gt names $gd, want $wd"
done < <(paste -d'|' "$WORK/activity.want" "$WORK/activity.got")
check "activity lists all $n_want steps newest first, each with its actor (alice; admin for the delete) and node"

# ============================================================================
section "7. exit codes"
fails 3 alice wharf --server "$N1" image show $NS/app:no-such-tag
check "an unknown tag: exit status 3"
fails 4 alice wharf --server "$N2" repo rm $NS/app
check "alice, a publisher and the namespace's owner but no admin, cannot delete the repository: exit status 4"
fails 2 alice wharf --server "$N3" tag add $NS/app:v2 'bad tag!'
[[ $ERR == *"a tag is 1 to 128 letters, digits, '_', '.' or '-', and does not start with '.' or '-'"* ]] ||
	fail "the bad tag's message does not state the rule"
fails 2 alice wharf --server "$N3" tag add $NS/app:v2 -- -dash
[[ $ERR == *"does not start with '.' or '-'"* ]] || fail "the dash tag's message does not state the rule"
check "a bad tag name: exit status 2, and the message states the rule"
ok alice wharf --server "$N1" image show $NS/app:v2
check "and the repository is intact"

say ""
say "# e2e-manage: 7 passed, 0 failed in $((SECONDS - STARTED))s"
echo "e2e-manage: 7 passed, 0 failed; the session is in $SESSION"
