package fsm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Access control keeps accounts, role grants, namespace ownership,
// visibility, API tokens and the token signing keys:
//
//	user/<name>                              fsmpb.User
//	m/userseq                                last assigned User.id, 8 bytes big endian
//	group/<name>                             fsmpb.Group
//	member/<group>\x00<user>                 empty; the members of a group
//	memberof/<user>\x00<group>               empty; the groups of a user
//	grant/<ns>\x00<kind>\x00<subject>\x00<role>  fsmpb.Grant; <ns> is empty for global roles
//	sgrant/<kind>\x00<subject>\x00<ns>\x00<role> empty; the grants of a subject
//	nsowner/<namespace>                      fsmpb.NamespaceOwner; the creator, irrevocable
//	nspublic/<namespace>                     empty; the namespace is public
//	repopublic/<repository>                  empty; the repository is public
//	token/<id>                               fsmpb.ApiToken
//	usertoken/<user>\x00<id>                 empty; the API tokens of a user
//	m/signingkeys                            fsmpb.SigningKeySet
//
// <kind> is "user" or "group", <role> the role's lower-case name. Secrets
// arrive hashed (passwords, token secrets) or generated (signing keys) by
// the proposer, so applying these commands stays deterministic.
const (
	prefixUser          = "user/"
	prefixGroup         = "group/"
	prefixMember        = "member/"
	prefixMemberOf      = "memberof/"
	prefixGrant         = "grant/"
	prefixSubjectGrant  = "sgrant/"
	prefixNamespaceOwn  = "nsowner/"
	prefixNamespacePub  = "nspublic/"
	prefixRepositoryPub = "repopublic/"
	prefixToken         = "token/"
	prefixUserToken     = "usertoken/"
)

var (
	keyUserSeq     = []byte("m/userseq")
	keySigningKeys = []byte("m/signingkeys")
)

// Limits on access-control records, so keys and records stay small.
const (
	maxPasswordHashLength = 1024
	maxDescriptionLength  = 1024
	maxTokenNamespaces    = 256
	maxSigningKeyBytes    = 4096
)

var (
	// accountPattern matches user and group names.
	accountPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
	// idPattern matches API token IDs.
	idPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	// keyIDPattern matches signing key IDs (libtrust fingerprints included).
	keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9:_-]{1,128}$`)
	// passwordHashPrefixes are the hash formats accepted, so that a bug
	// cannot store a password in the clear.
	passwordHashPrefixes = []string{"$argon2id$", "$2a$", "$2b$", "$2y$"}
	// tokenActions are the registry actions an API token may carry.
	tokenActions = []string{"pull", "push", "delete"}
)

func userKey(name string) []byte            { return key(prefixUser, name) }
func groupKey(name string) []byte           { return key(prefixGroup, name) }
func memberKey(group, user string) []byte   { return key(prefixMember, group, user) }
func memberPrefix(group string) []byte      { return key(prefixMember, group, "") }
func memberOfKey(user, group string) []byte { return key(prefixMemberOf, user, group) }
func memberOfPrefix(user string) []byte     { return key(prefixMemberOf, user, "") }
func namespaceOwnerKey(ns string) []byte    { return key(prefixNamespaceOwn, ns) }
func namespacePublicKey(ns string) []byte   { return key(prefixNamespacePub, ns) }
func repositoryPublicKey(r string) []byte   { return key(prefixRepositoryPub, r) }
func tokenKey(id string) []byte             { return key(prefixToken, id) }
func userTokenKey(user, id string) []byte   { return key(prefixUserToken, user, id) }
func userTokenPrefix(user string) []byte    { return key(prefixUserToken, user, "") }

// grantKey and subjectGrantKey index g by namespace and by subject.
func grantKey(g *fsmpb.Grant) []byte {
	s := g.GetSubject()
	return key(prefixGrant, g.GetNamespace(), kindName(s.GetKind()), s.GetName(), roleName(g.GetRole()))
}

func subjectGrantKey(g *fsmpb.Grant) []byte {
	s := g.GetSubject()
	return key(prefixSubjectGrant, kindName(s.GetKind()), s.GetName(), g.GetNamespace(), roleName(g.GetRole()))
}

// grantPrefix covers the grants on ns; "" covers the global ones.
func grantPrefix(ns string) []byte { return key(prefixGrant, ns, "") }

// subjectGrantPrefix covers the grants of a subject on ns.
func subjectGrantPrefix(kind fsmpb.SubjectKind, name, ns string) []byte {
	return key(prefixSubjectGrant, kindName(kind), name, ns, "")
}

// subjectPrefix covers every grant of a subject.
func subjectPrefix(kind fsmpb.SubjectKind, name string) []byte {
	return key(prefixSubjectGrant, kindName(kind), name, "")
}

func kindName(k fsmpb.SubjectKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "SUBJECT_KIND_"))
}

// roleName is the lower-case name of r, e.g. "collaborator".
func roleName(r fsmpb.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// GlobalRole reports whether r is granted globally rather than on a
// namespace.
func GlobalRole(r fsmpb.Role) bool {
	return r == fsmpb.Role_ROLE_PUBLISHER || r == fsmpb.Role_ROLE_ADMIN
}

// --- validation ---

func validateAccount(what, name string) *fsmpb.Result {
	if !accountPattern.MatchString(name) {
		return invalid("invalid %s name %q: use 1 to 64 lower-case letters, digits, '.', '_', '@' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

func validatePasswordHash(h string) *fsmpb.Result {
	if h == "" {
		return nil
	}
	if len(h) > maxPasswordHashLength {
		return invalid("password hash is longer than %d bytes", maxPasswordHashLength)
	}
	for _, p := range passwordHashPrefixes {
		if strings.HasPrefix(h, p) {
			return nil
		}
	}
	return invalid("password hash is neither argon2id nor bcrypt")
}

// validateNamespace checks a namespace name: one component of a repository
// name.
func validateNamespace(ns string) *fsmpb.Result {
	if strings.Contains(ns, "/") || validateRepository(ns) != nil {
		return invalid("invalid namespace name %q", ns)
	}
	return nil
}

func validateGrant(g *fsmpb.Grant) *fsmpb.Result {
	if g == nil {
		return invalid("no grant")
	}
	switch g.GetSubject().GetKind() {
	case fsmpb.SubjectKind_SUBJECT_KIND_USER:
		if res := validateAccount("user", g.GetSubject().GetName()); res != nil {
			return res
		}
	case fsmpb.SubjectKind_SUBJECT_KIND_GROUP:
		if res := validateAccount("group", g.GetSubject().GetName()); res != nil {
			return res
		}
	default:
		return invalid("grant names neither a user nor a group")
	}
	switch r := g.GetRole(); {
	case r == fsmpb.Role_ROLE_COLLABORATOR || r == fsmpb.Role_ROLE_OWNER:
		if g.GetNamespace() == "" {
			return invalid("role %s is granted on a namespace; name one", roleName(r))
		}
		return validateNamespace(g.GetNamespace())
	case GlobalRole(r):
		if g.GetNamespace() != "" {
			return invalid("role %s is global; it cannot be granted on namespace %q", roleName(r), g.GetNamespace())
		}
		return nil
	default:
		return invalid("unknown role %v", r)
	}
}

func validateToken(t *fsmpb.ApiToken, now int64) *fsmpb.Result {
	switch {
	case t == nil:
		return invalid("no token")
	case !idPattern.MatchString(t.GetId()):
		return invalid("invalid token ID %q", t.GetId())
	case len(t.GetSecretSha256()) != 32:
		return invalid("token %s: secret hash has %d bytes, want a SHA-256", t.GetId(), len(t.GetSecretSha256()))
	case t.GetExpiresUnixNanos() <= now:
		return invalid("token %s expires before it is created", t.GetId())
	case len(t.GetDescription()) > maxDescriptionLength:
		return invalid("token %s: description is longer than %d bytes", t.GetId(), maxDescriptionLength)
	case len(t.GetNamespaces()) > maxTokenNamespaces:
		return invalid("token %s names more than %d namespaces", t.GetId(), maxTokenNamespaces)
	case t.GetSession() && (len(t.GetNamespaces()) > 0 || len(t.GetActions()) > 0):
		return invalid("login session %s has every right of its owner; it names no namespaces or actions", t.GetId())
	case t.GetSession() && t.GetPasswordFingerprint() == "":
		return invalid("login session %s records no password fingerprint", t.GetId())
	case !t.GetSession() && t.GetPasswordFingerprint() != "":
		return invalid("token %s: only a login session records a password fingerprint", t.GetId())
	case !t.GetSession() && len(t.GetActions()) == 0:
		return invalid("token %s allows no action; give some of %s", t.GetId(), strings.Join(tokenActions, ", "))
	}
	if res := validateAccount("user", t.GetOwner()); res != nil {
		return res
	}
	for _, ns := range t.GetNamespaces() {
		if res := validateNamespace(ns); res != nil {
			return res
		}
	}
	for _, a := range t.GetActions() {
		if !slices.Contains(tokenActions, a) {
			return invalid("token %s: unknown action %q; use %s", t.GetId(), a, strings.Join(tokenActions, ", "))
		}
	}
	return nil
}

func validateSigningKey(k *fsmpb.SigningKey) *fsmpb.Result {
	if k == nil {
		return invalid("no signing key")
	}
	if !keyIDPattern.MatchString(k.GetId()) {
		return invalid("invalid signing key ID %q", k.GetId())
	}
	if len(k.GetPkcs8()) > maxSigningKeyBytes {
		return invalid("signing key %s is longer than %d bytes", k.GetId(), maxSigningKeyBytes)
	}
	priv, err := x509.ParsePKCS8PrivateKey(k.GetPkcs8())
	if err != nil {
		return invalid("signing key %s: %v", k.GetId(), err)
	}
	if ec, ok := priv.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
		return invalid("signing key %s is not an ECDSA P-256 key", k.GetId())
	}
	return nil
}

// --- users ---

func applyCreateUser(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetCreateUser()
	if res := validateAccount("user", op.GetName()); res != nil {
		return res, nil
	}
	if res := validatePasswordHash(op.GetPasswordHash()); res != nil {
		return res, nil
	}
	exists, err := has(b, userKey(op.GetName()))
	if err != nil {
		return nil, err
	}
	if exists {
		return alreadyExists("user %q already exists", op.GetName()), nil
	}
	id, err := getUint64(b, keyUserSeq)
	if err != nil {
		return nil, err
	}
	id++
	if err := b.Set(keyUserSeq, encodeUint64(id), nil); err != nil {
		return nil, err
	}
	u := &fsmpb.User{
		Name:             op.GetName(),
		Id:               id,
		PasswordHash:     op.GetPasswordHash(),
		Superuser:        op.GetSuperuser(),
		CreatedUnixNanos: cmd.GetUnixNanos(),
	}
	return success(), setProto(b, userKey(u.GetName()), u)
}

func applySetUserPassword(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetSetUserPassword()
	if res := validatePasswordHash(op.GetPasswordHash()); res != nil {
		return res, nil
	}
	return updateUser(b, op.GetName(), func(u *fsmpb.User) *fsmpb.Result {
		u.PasswordHash = op.GetPasswordHash()
		return nil
	})
}

func applySetUserSuperuser(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetSetUserSuperuser()
	others, err := otherSuperusers(b, op.GetName())
	if err != nil {
		return nil, err
	}
	return updateUser(b, op.GetName(), func(u *fsmpb.User) *fsmpb.Result {
		if u.GetSuperuser() && !op.GetSuperuser() && others == 0 {
			return failedPrecondition("user %q is the last superuser; make another user a superuser first", u.GetName())
		}
		u.Superuser = op.GetSuperuser()
		return nil
	})
}

// updateUser applies change to the record of user name and stores it,
// unless change refuses with a Result.
func updateUser(b *pebble.Batch, name string, change func(*fsmpb.User) *fsmpb.Result) (*fsmpb.Result, error) {
	u, res, err := loadUser(b, name)
	if res != nil || err != nil {
		return res, err
	}
	if res := change(u); res != nil {
		return res, nil
	}
	return success(), setProto(b, userKey(name), u)
}

// loadUser returns the record of user name, or a Result refusing the
// command if the name is invalid or unknown.
func loadUser(r pebble.Reader, name string) (*fsmpb.User, *fsmpb.Result, error) {
	if res := validateAccount("user", name); res != nil {
		return nil, res, nil
	}
	var u fsmpb.User
	found, err := getProto(r, userKey(name), &u)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, notFound("user %q does not exist", name), nil
	}
	return &u, nil, nil
}

// otherSuperusers counts the superusers other than name.
func otherSuperusers(r pebble.Reader, name string) (int, error) {
	n := 0
	err := scanPrefix(r, []byte(prefixUser), func(k, v []byte) (bool, error) {
		var u fsmpb.User
		if err := unmarshalRecord(k, v, &u); err != nil {
			return false, err
		}
		if u.GetSuperuser() && u.GetName() != name {
			n++
		}
		return true, nil
	})
	return n, err
}

// applyDeleteUser removes a user with its memberships, grants and tokens.
// The ownership of namespaces it created stays recorded under its user ID,
// which no later account receives.
func applyDeleteUser(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	name := cmd.GetDeleteUser().GetName()
	u, res, err := loadUser(b, name)
	if res != nil || err != nil {
		return res, err
	}
	if u.GetSuperuser() {
		others, err := otherSuperusers(b, name)
		if err != nil {
			return nil, err
		}
		if others == 0 {
			return failedPrecondition("user %q is the last superuser and cannot be deleted", name), nil
		}
	}
	groups, err := suffixes(b, memberOfPrefix(name))
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if err := deleteKeys(b, memberKey(g, name), memberOfKey(name, g)); err != nil {
			return nil, err
		}
	}
	if err := deleteSubjectGrants(b, fsmpb.SubjectKind_SUBJECT_KIND_USER, name); err != nil {
		return nil, err
	}
	ids, err := suffixes(b, userTokenPrefix(name))
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := deleteKeys(b, tokenKey(id), userTokenKey(name, id)); err != nil {
			return nil, err
		}
	}
	return success(), b.Delete(userKey(name), nil)
}

// --- groups ---

func applyCreateGroup(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	name := cmd.GetCreateGroup().GetName()
	if res := validateAccount("group", name); res != nil {
		return res, nil
	}
	exists, err := has(b, groupKey(name))
	if err != nil {
		return nil, err
	}
	if exists {
		return alreadyExists("group %q already exists", name), nil
	}
	g := &fsmpb.Group{Name: name, CreatedUnixNanos: cmd.GetUnixNanos()}
	return success(), setProto(b, groupKey(name), g)
}

func applyDeleteGroup(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	name := cmd.GetDeleteGroup().GetName()
	if res, err := mustHaveGroup(b, name); res != nil || err != nil {
		return res, err
	}
	users, err := suffixes(b, memberPrefix(name))
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if err := deleteKeys(b, memberKey(name, u), memberOfKey(u, name)); err != nil {
			return nil, err
		}
	}
	if err := deleteSubjectGrants(b, fsmpb.SubjectKind_SUBJECT_KIND_GROUP, name); err != nil {
		return nil, err
	}
	return success(), b.Delete(groupKey(name), nil)
}

func mustHaveGroup(r pebble.Reader, name string) (*fsmpb.Result, error) {
	if res := validateAccount("group", name); res != nil {
		return res, nil
	}
	exists, err := has(r, groupKey(name))
	if err != nil || exists {
		return nil, err
	}
	return notFound("group %q does not exist", name), nil
}

// applyAddGroupMember adds a user to a group; adding a member again
// succeeds and changes nothing.
func applyAddGroupMember(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetAddGroupMember()
	if res, err := mustHaveGroup(b, op.GetGroup()); res != nil || err != nil {
		return res, err
	}
	if _, res, err := loadUser(b, op.GetUser()); res != nil || err != nil {
		return res, err
	}
	if err := b.Set(memberKey(op.GetGroup(), op.GetUser()), nil, nil); err != nil {
		return nil, err
	}
	return success(), b.Set(memberOfKey(op.GetUser(), op.GetGroup()), nil, nil)
}

func applyRemoveGroupMember(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetRemoveGroupMember()
	if res, err := mustHaveGroup(b, op.GetGroup()); res != nil || err != nil {
		return res, err
	}
	res, err := deleteIfExists(b, memberKey(op.GetGroup(), op.GetUser()), func() *fsmpb.Result {
		return notFound("user %q is not a member of group %q", op.GetUser(), op.GetGroup())
	})
	if res.GetCode() != fsmpb.ResultCode_RESULT_CODE_OK || err != nil {
		return res, err
	}
	return res, b.Delete(memberOfKey(op.GetUser(), op.GetGroup()), nil)
}

// --- grants ---

// applyGrantRole stores a grant on an existing namespace (or a global
// one) to an existing subject. Granting a role again succeeds and keeps
// the first grant's time.
func applyGrantRole(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	g := cmd.GetGrantRole().GetGrant()
	if res := validateGrant(g); res != nil {
		return res, nil
	}
	if res, err := mustHaveSubject(b, g.GetSubject()); res != nil || err != nil {
		return res, err
	}
	if ns := g.GetNamespace(); ns != "" {
		exists, err := namespaceKnown(b, ns)
		if err != nil {
			return nil, err
		}
		if !exists {
			return notFound("namespace %q does not exist", ns), nil
		}
	}
	exists, err := has(b, grantKey(g))
	if err != nil {
		return nil, err
	}
	if exists {
		return success(), nil
	}
	rec := &fsmpb.Grant{Role: g.GetRole(), Namespace: g.GetNamespace(), Subject: g.GetSubject(), CreatedUnixNanos: cmd.GetUnixNanos()}
	if err := setProto(b, grantKey(rec), rec); err != nil {
		return nil, err
	}
	return success(), b.Set(subjectGrantKey(rec), nil, nil)
}

func mustHaveSubject(r pebble.Reader, s *fsmpb.Subject) (*fsmpb.Result, error) {
	if s.GetKind() == fsmpb.SubjectKind_SUBJECT_KIND_GROUP {
		return mustHaveGroup(r, s.GetName())
	}
	_, res, err := loadUser(r, s.GetName())
	return res, err
}

// applyRevokeRole deletes a grant. The creator's ownership of a namespace
// is not a grant and cannot be revoked.
func applyRevokeRole(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	g := cmd.GetRevokeRole().GetGrant()
	if res := validateGrant(g); res != nil {
		return res, nil
	}
	exists, err := has(b, grantKey(g))
	if err != nil {
		return nil, err
	}
	if !exists {
		return revokeMissing(b, g)
	}
	return success(), deleteKeys(b, grantKey(g), subjectGrantKey(g))
}

// revokeMissing explains why a grant that is not stored cannot be revoked.
func revokeMissing(r pebble.Reader, g *fsmpb.Grant) (*fsmpb.Result, error) {
	if g.GetRole() == fsmpb.Role_ROLE_OWNER && g.GetSubject().GetKind() == fsmpb.SubjectKind_SUBJECT_KIND_USER {
		creator, err := isCreator(r, g.GetSubject().GetName(), g.GetNamespace())
		if err != nil {
			return nil, err
		}
		if creator {
			return failedPrecondition("user %q created namespace %q; its ownership cannot be revoked", g.GetSubject().GetName(), g.GetNamespace()), nil
		}
	}
	return notFound("%s %q holds no %s role%s", kindName(g.GetSubject().GetKind()), g.GetSubject().GetName(), roleName(g.GetRole()), onNamespace(g.GetNamespace())), nil
}

func onNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return fmt.Sprintf(" on namespace %q", ns)
}

func deleteSubjectGrants(b *pebble.Batch, kind fsmpb.SubjectKind, name string) error {
	rest, err := suffixes(b, subjectPrefix(kind, name))
	if err != nil {
		return err
	}
	for _, s := range rest {
		ns, role := splitGrantSuffix(s)
		g := &fsmpb.Grant{Role: role, Namespace: ns, Subject: &fsmpb.Subject{Kind: kind, Name: name}}
		if err := deleteKeys(b, grantKey(g), subjectGrantKey(g)); err != nil {
			return err
		}
	}
	return nil
}

// --- namespaces ---

// namespaceKnown reports whether ns exists or has been claimed.
func namespaceKnown(r pebble.Reader, ns string) (bool, error) {
	exists, err := has(r, namespaceKey(ns))
	if err != nil || exists {
		return exists, err
	}
	return has(r, namespaceOwnerKey(ns))
}

// isCreator reports whether user, as the account that exists now, created
// namespace ns.
func isCreator(r pebble.Reader, user, ns string) (bool, error) {
	var own fsmpb.NamespaceOwner
	found, err := getProto(r, namespaceOwnerKey(ns), &own)
	if err != nil || !found || own.GetUser() != user {
		return false, err
	}
	var u fsmpb.User
	found, err = getProto(r, userKey(user), &u)
	return found && u.GetId() == own.GetUserId(), err
}

func applyClaimNamespace(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetClaimNamespace()
	ns := op.GetNamespace()
	if res := validateNamespace(ns); res != nil {
		return res, nil
	}
	u, res, err := loadUser(b, op.GetUser())
	if res != nil || err != nil {
		return res, err
	}
	var own fsmpb.NamespaceOwner
	claimed, err := getProto(b, namespaceOwnerKey(ns), &own)
	if err != nil {
		return nil, err
	}
	if claimed {
		if own.GetUserId() == u.GetId() {
			return success(), nil
		}
		return alreadyExists("namespace %q was created by %q", ns, own.GetUser()), nil
	}
	exists, err := has(b, namespaceKey(ns))
	if err != nil {
		return nil, err
	}
	if exists {
		return alreadyExists("namespace %q already exists", ns), nil
	}
	rec := &fsmpb.NamespaceOwner{Namespace: ns, User: u.GetName(), UserId: u.GetId(), CreatedUnixNanos: cmd.GetUnixNanos()}
	return success(), setProto(b, namespaceOwnerKey(ns), rec)
}

func applySetVisibility(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetSetVisibility()
	var k []byte
	switch ns, repo := op.GetNamespace(), op.GetRepository(); {
	case (ns == "") == (repo == ""):
		return invalid("set visibility of exactly one namespace or repository"), nil
	case ns != "":
		if res := validateNamespace(ns); res != nil {
			return res, nil
		}
		exists, err := namespaceKnown(b, ns)
		if err != nil {
			return nil, err
		}
		if !exists {
			return notFound("namespace %q does not exist", ns), nil
		}
		k = namespacePublicKey(ns)
	default:
		if res := validateRepository(repo); res != nil {
			return res, nil
		}
		exists, err := has(b, repositoryKey(repo))
		if err != nil {
			return nil, err
		}
		if !exists {
			return notFound("repository %q does not exist", repo), nil
		}
		k = repositoryPublicKey(repo)
	}
	if op.GetPublic() {
		return success(), b.Set(k, nil, nil)
	}
	return success(), b.Delete(k, nil)
}

// --- API tokens ---

func applyCreateAPIToken(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	t := cmd.GetCreateApiToken().GetToken()
	if res := validateToken(t, cmd.GetUnixNanos()); res != nil {
		return res, nil
	}
	if _, res, err := loadUser(b, t.GetOwner()); res != nil || err != nil {
		return res, err
	}
	exists, err := has(b, tokenKey(t.GetId()))
	if err != nil {
		return nil, err
	}
	if exists {
		return alreadyExists("token %s already exists", t.GetId()), nil
	}
	rec := &fsmpb.ApiToken{
		Id:                  t.GetId(),
		Owner:               t.GetOwner(),
		Description:         t.GetDescription(),
		Namespaces:          slices.Compact(slices.Sorted(slices.Values(t.GetNamespaces()))),
		Actions:             slices.Compact(slices.Sorted(slices.Values(t.GetActions()))),
		ExpiresUnixNanos:    t.GetExpiresUnixNanos(),
		SecretSha256:        t.GetSecretSha256(),
		CreatedUnixNanos:    cmd.GetUnixNanos(),
		Session:             t.GetSession(),
		PasswordFingerprint: t.GetPasswordFingerprint(),
	}
	if err := setProto(b, tokenKey(rec.GetId()), rec); err != nil {
		return nil, err
	}
	return success(), b.Set(userTokenKey(rec.GetOwner(), rec.GetId()), nil, nil)
}

func applyDeleteAPIToken(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	id := cmd.GetDeleteApiToken().GetId()
	if !idPattern.MatchString(id) {
		return invalid("invalid token ID %q", id), nil
	}
	var t fsmpb.ApiToken
	found, err := getProto(b, tokenKey(id), &t)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("token %s does not exist", id), nil
	}
	return success(), deleteKeys(b, tokenKey(id), userTokenKey(t.GetOwner(), id))
}

// --- signing keys ---

// applyRotateSigningKey makes the new key current and keeps the previous
// current key, if the current key is the one the proposer saw.
func applyRotateSigningKey(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetRotateSigningKey()
	if res := validateSigningKey(op.GetKey()); res != nil {
		return res, nil
	}
	var set fsmpb.SigningKeySet
	if _, err := getProto(b, keySigningKeys, &set); err != nil {
		return nil, err
	}
	if set.GetCurrentId() != op.GetExpectCurrentId() {
		return failedPrecondition("the current signing key is %q, not %q; another rotation won", set.GetCurrentId(), op.GetExpectCurrentId()), nil
	}
	for _, k := range set.GetKeys() {
		if k.GetId() == op.GetKey().GetId() {
			return invalid("signing key %s was used before; generate a new one", k.GetId()), nil
		}
	}
	key := &fsmpb.SigningKey{Id: op.GetKey().GetId(), Pkcs8: op.GetKey().GetPkcs8(), CreatedUnixNanos: cmd.GetUnixNanos()}
	next := &fsmpb.SigningKeySet{CurrentId: key.GetId(), Keys: []*fsmpb.SigningKey{key}}
	if len(set.GetKeys()) > 0 {
		next.Keys = append(next.Keys, set.GetKeys()[0])
	}
	return success(), setProto(b, keySigningKeys, next)
}

// --- helpers ---

// suffixes returns the rest of every key starting with prefix.
func suffixes(r pebble.Reader, prefix []byte) ([]string, error) {
	var out []string
	err := scanPrefix(r, prefix, func(k, _ []byte) (bool, error) {
		out = append(out, string(k[len(prefix):]))
		return true, nil
	})
	return out, err
}

func deleteKeys(b *pebble.Batch, keys ...[]byte) error {
	for _, k := range keys {
		if err := b.Delete(k, nil); err != nil {
			return fmt.Errorf("delete %q: %w", k, err)
		}
	}
	return nil
}

func unmarshalRecord(k, v []byte, m proto.Message) error {
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("decode %q: %w", k, err)
	}
	return nil
}
