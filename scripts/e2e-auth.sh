#!/usr/bin/env bash
# End-to-end test of access control with real podman against a real node,
# checking the messages podman prints:
#  1. an anonymous push is refused;
#  2. podman login with a wrong password fails, with the right one succeeds;
#  3. a user without a role cannot push;
#  4. a publisher's push creates the namespace and makes them its owner;
#  5. a collaborator pushes to an existing repository but cannot create one;
#  6. a public repository is pulled anonymously, a private one is not, and
#     the anonymous catalog and podman search list the public ones only;
#  7. an API token works as a podman password, within its scope.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/podman.sh"

PORT=${E2E_AUTH_PORT:-15251}
REG=localhost:$PORT
PASSED=0
export XDG_CONFIG_HOME=$WORK/config # wharf login keeps its credentials here

pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }

# wharf_as USER PASSWORD ARGS...: the CLI as USER.
wharf_as() {
	local user=$1 pass=$2
	shift 2
	WHARF_SERVER=http://$REG WHARF_USERNAME=$user WHARF_PASSWORD=$pass "$WHARF" "$@"
}
admin() { wharf_as "$ADMIN_USER" "$WHARF_ADMIN_PASSWORD" "$@"; }

# must_fail WANT CMD...: CMD fails and prints WANT (a fixed string).
must_fail() {
	local want=$1 out
	shift
	if out=$("$@" 2>&1); then
		die "'$*' succeeded, want a failure saying: $want"
	fi
	grep -qF -- "$want" <<<"$out" || die "'$*' failed without saying '$want':
$out"
	log "refused as expected: $(grep -F -- "$want" <<<"$out" | head -n 1)"
}

# must_print WANT CMD...: CMD succeeds and prints WANT.
must_print() {
	local want=$1 out
	shift
	out=$("$@" 2>&1) || die "'$*' failed:
$out"
	grep -qF -- "$want" <<<"$out" || die "'$*' did not print '$want':
$out"
}

podman_as() { "${PODMAN[@]}" login "${TLS[@]}" -u "$1" --password-stdin "$REG" <<<"$2"; }
push() { "${PODMAN[@]}" push "${TLS[@]}" "$1"; }
logout() { "${PODMAN[@]}" logout "$REG" >/dev/null 2>&1 || true; }

build_wharf
start_node node1 "$PORT"
build_image localhost/e2e/auth:v1 2 50000
for ref in nobody/app carol/app carol/web carol/new public/app; do
	"${PODMAN[@]}" tag localhost/e2e/auth:v1 "$REG/$ref:v1"
done

echo "carol-password" | admin user create carol --password-stdin >/dev/null
echo "dave-password" | admin user create dave --password-stdin >/dev/null
echo "erin-password" | admin user create erin --password-stdin >/dev/null
admin role grant publisher --user carol >/dev/null

log "1. an anonymous push is refused"
logout
must_fail "requested access to the resource is denied" push "$REG/carol/app:v1"
pass "anonymous push refused"

log "2. podman login"
must_fail "invalid username/password" podman_as carol wrong-password
must_print "Login Succeeded!" podman_as carol carol-password
pass "wrong password refused, right one accepted"

log "3. a user without a role cannot push"
must_print "Login Succeeded!" podman_as dave dave-password
must_fail "requested access to the resource is denied" push "$REG/nobody/app:v1"
pass "user without a role refused"

log "4. a publisher's push creates the namespace and makes them its owner"
podman_as carol carol-password >/dev/null
push "$REG/carol/app:v1" 2>/dev/null
owners=$(admin role list --namespace carol)
grep -Eq '^owner +carol +carol +- +creator' <<<"$owners" || die "carol is not the creator-owner of namespace carol:
$owners"
must_print "creator (irrevocable)" wharf_as carol carol-password role list --namespace carol
must_fail "cannot be revoked" admin role revoke owner --user carol --namespace carol
pass "carol created namespace carol and owns it for good"

log "5. a collaborator pushes to an existing repository, but cannot create one"
wharf_as carol carol-password role grant collaborator --user dave --namespace carol >/dev/null
podman_as dave dave-password >/dev/null
"${PODMAN[@]}" tag localhost/e2e/auth:v1 "$REG/carol/app:v2"
push "$REG/carol/app:v2" 2>/dev/null
must_fail "requested access to the resource is denied" push "$REG/carol/new:v1"
pass "collaborator dave pushed carol/app:v2 and could not create carol/new"

log "6. public repositories are pulled anonymously, private ones are not"
podman_as carol carol-password >/dev/null
push "$REG/carol/web:v1" 2>/dev/null
wharf_as carol carol-password repo set-visibility carol/app public >/dev/null
logout
"${PODMAN[@]}" rmi -f "$REG/carol/app:v1" "$REG/carol/web:v1" >/dev/null
"${PODMAN[@]}" pull -q "${TLS[@]}" "$REG/carol/app:v1" >/dev/null
must_fail "unauthorized" "${PODMAN[@]}" pull -q "${TLS[@]}" "$REG/carol/web:v1"
catalog=$(curl -fsS -u erin:erin-password "http://$REG/v2/_catalog")
[ "$catalog" = '{"repositories":["carol/app"]}' ] || die "erin's catalog (no role): $catalog"
anon=$(curl -fsS "http://$REG/v2/_catalog")
[ "$anon" = '{"repositories":["carol/app"]}' ] || die "anonymous catalog: $anon"
found=$("${PODMAN[@]}" search "${TLS[@]}" --format '{{.Name}}' "$REG/carol" 2>&1) || die "anonymous podman search: $found"
grep -qx "$REG/carol/app" <<<"$found" || die "anonymous podman search lists: $found"
grep -q "carol/web" <<<"$found" && die "anonymous podman search lists the private carol/web: $found"
pass "anonymous pull of public carol/app; private carol/web refused; catalog and podman search list public ones only"

log "7. an API token as the podman password"
token=$(wharf_as carol carol-password token create --namespace carol --actions pull,push --expires 1h 2>/dev/null)
must_print "Login Succeeded!" podman_as carol "$token"
"${PODMAN[@]}" tag localhost/e2e/auth:v1 "$REG/carol/app:v3"
push "$REG/carol/app:v3" 2>/dev/null
must_fail "requested access to the resource is denied" push "$REG/public/app:v1"
id=$(wharf_as carol carol-password token list | awk 'NR == 2 { print $1 }')
wharf_as carol carol-password token revoke "$id" >/dev/null
must_fail "invalid username/password" podman_as carol "$token"
pass "token $id pushed into carol only, and stopped working once revoked"

echo "e2e-auth: $PASSED passed, 0 failed"
