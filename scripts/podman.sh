# podman helpers for wharf's end-to-end scripts. Source it after lib.sh.
# podman keeps its images under $WORK, so a run leaves the host untouched.

PODMAN=(podman --storage-driver=vfs --root "$WORK/podman-root" --runroot "$WORK/podman-run")
TLS=(--tls-verify=false)
# podman and skopeo keep their logins under $WORK too.
export REGISTRY_AUTH_FILE=$WORK/auth.json
[ -f "$REGISTRY_AUTH_FILE" ] || echo '{}' >"$REGISTRY_AUTH_FILE"

# podman_login REGISTRY [USER PASSWORD]: podman login, as admin by default.
podman_login() {
	local reg=$1 user=${2:-$ADMIN_USER} pass=${3:-$WHARF_ADMIN_PASSWORD}
	"${PODMAN[@]}" login "${TLS[@]}" -u "$user" --password-stdin "$reg" <<<"$pass" >/dev/null
}

image_id() { "${PODMAN[@]}" image inspect --format '{{.Id}}' "$1"; }

# build_image TAG LAYERS BYTES_PER_LAYER: builds a FROM-scratch image with
# one layer of random bytes per COPY.
build_image() {
	local tag=$1 layers=$2 size=$3 dir
	dir=$(mktemp -d "$WORK/ctx.XXXXXX")
	echo "FROM scratch" >"$dir/Containerfile"
	for i in $(seq 1 "$layers"); do
		head -c "$size" /dev/urandom >"$dir/layer$i"
		echo "COPY layer$i /layer$i" >>"$dir/Containerfile"
	done
	"${PODMAN[@]}" build -q -t "$tag" "$dir" >/dev/null
}

# round_trip_podman LOCAL REMOTE: push, remove, pull, compare image IDs.
round_trip_podman() {
	local local_tag=$1 remote=$2 before after
	before=$(image_id "$local_tag")
	"${PODMAN[@]}" tag "$local_tag" "$remote"
	"${PODMAN[@]}" push -q "${TLS[@]}" "$remote"
	"${PODMAN[@]}" rmi -f "$remote" "$local_tag" >/dev/null
	"${PODMAN[@]}" pull -q "${TLS[@]}" "$remote" >/dev/null
	after=$(image_id "$remote")
	[ "$before" = "$after" ] || die "podman round trip of $remote changed the image ID: $before -> $after"
	log "podman push/pull of $remote kept image ID ${after:0:12}"
}
