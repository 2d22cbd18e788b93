// Package auth is wharf's access control: the role → permission policy,
// the decision whether a caller may act on a repository, and the Docker
// token service that podman and docker log in through.
//
// # Policy
//
// Permissions live on namespaces, the first path component of a
// repository name. A role is granted to a user or a group, on a namespace
// (collaborator, owner) or globally (publisher, admin); a global role holds
// on every namespace. Superusers pass every check. The user who pushes the
// first repository of a namespace becomes its owner for good (the
// ClaimNamespace command records it before the first write). Repositories
// are private by default; a public namespace or repository may be pulled by
// anyone, anonymous callers included. Decide is a pure function of the
// caller, the action and an fsm.Access read from the state, so every node
// decides alike.
//
// # Token service
//
// A registry request without credentials is answered 401 with a Bearer
// challenge (Challenge) naming the realm, "<public URL>/token", the service
// and the scopes the request needs. The client asks the realm for a token
// with Basic credentials, a user's password or an API token; Handler checks
// them, grants each requested scope only the actions Decide allows, and
// returns a JWT signed ES256 with the cluster's current signing key, which
// lives in the FSM so that every node can verify it (Verifier). A rotated
// key keeps verifying until the tokens it signed expire.
//
// Clients of the OAuth2 flow POST a form instead (serveOAuth): a password
// grant, which with access_type=offline also returns a refresh token, or a
// refresh grant. Refresh tokens are JWTs signed with the same keys, for a
// distinct audience, bound to the account's ID and to the password hash or
// API token of the login, which each refresh checks again (RefreshClaims).
//
// Registry tokens, like refresh tokens, name the login they were issued
// for (Login), and each use checks it and the caller's roles as they are
// now, so a revocation ends the tokens issued before it.
//
// Failed logins are throttled per (source address, user name), with a
// lockout that doubles with each failure beyond a few, counted on every
// node of a cluster (throttle.go); secrets are compared in constant time
// and never logged; logins and token use are written as audit log lines
// naming the actor and the target.
package auth
