package auth

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Resource types of registry token scopes.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
)

// Scope is one resource and the actions asked for or granted on it, as in
// "repository:acme/app:pull,push" or "registry:catalog:*".
type Scope struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// maxScopeLength bounds one scope so parsing stays cheap.
const maxScopeLength = 512

var (
	scopeTypePattern   = regexp.MustCompile(`^[a-z0-9]+(\([a-z0-9]+\))?$`)
	scopeActionPattern = regexp.MustCompile(`^([a-z]+|\*)$`)
	// repositoryNamePattern is the OCI distribution name grammar.
	repositoryNamePattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
)

// errScope is wrapped by every scope parse error.
var errScope = errors.New("invalid scope")

// ParseScope parses "type:name:actions". The type may carry a class, as in
// "repository(plugin)", which is dropped; a repository name must follow
// the OCI grammar, a registry resource must be "catalog". Actions are
// comma-separated and returned sorted without duplicates.
func ParseScope(s string) (Scope, error) {
	if len(s) > maxScopeLength {
		return Scope{}, fmt.Errorf("%w: longer than %d bytes", errScope, maxScopeLength)
	}
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Scope{}, fmt.Errorf("%w %q: want type:name:actions", errScope, s)
	}
	name, actions := rest[:i], rest[i+1:]
	if !scopeTypePattern.MatchString(typ) {
		return Scope{}, fmt.Errorf("%w %q: bad resource type", errScope, s)
	}
	typ, _, _ = strings.Cut(typ, "(")
	if err := checkScopeName(typ, name); err != nil {
		return Scope{}, fmt.Errorf("%w %q: %w", errScope, s, err)
	}
	sc := Scope{Type: typ, Name: name}
	for a := range strings.SplitSeq(actions, ",") {
		if !scopeActionPattern.MatchString(a) {
			return Scope{}, fmt.Errorf("%w %q: bad action %q", errScope, s, a)
		}
		sc.Actions = append(sc.Actions, a)
	}
	slices.Sort(sc.Actions)
	sc.Actions = slices.Compact(sc.Actions)
	return sc, nil
}

func checkScopeName(typ, name string) error {
	switch typ {
	case TypeRepository:
		if len(name) > 255 || !repositoryNamePattern.MatchString(name) {
			return errors.New("bad repository name")
		}
	case TypeRegistry:
		if name != "catalog" {
			return errors.New(`the registry resource is "catalog"`)
		}
	default:
		return fmt.Errorf("unknown resource type %q", typ)
	}
	return nil
}

// ParseScopes parses the scope parameters of a token request; each may
// hold several scopes separated by spaces. Scopes on the same resource are
// merged.
func ParseScopes(params []string) ([]Scope, error) {
	var scopes []Scope
	for _, p := range params {
		for f := range strings.FieldsSeq(p) {
			sc, err := ParseScope(f)
			if err != nil {
				return nil, err
			}
			scopes = mergeScope(scopes, sc)
		}
	}
	return scopes, nil
}

// mergeScope adds sc to scopes, joining it with a scope on the same
// resource.
func mergeScope(scopes []Scope, sc Scope) []Scope {
	for i, s := range scopes {
		if s.Type == sc.Type && s.Name == sc.Name {
			actions := slices.Concat(s.Actions, sc.Actions)
			slices.Sort(actions)
			scopes[i].Actions = slices.Compact(actions)
			return scopes
		}
	}
	return append(scopes, sc)
}

// String formats sc as "type:name:a,b".
func (sc Scope) String() string {
	return sc.Type + ":" + sc.Name + ":" + strings.Join(sc.Actions, ",")
}

// RepositoryScope is the scope of actions on repo.
func RepositoryScope(repo string, actions ...string) Scope {
	return Scope{Type: TypeRepository, Name: repo, Actions: actions}
}

// CatalogScope is the scope of a catalog listing.
func CatalogScope() Scope {
	return Scope{Type: TypeRegistry, Name: "catalog", Actions: []string{"*"}}
}
