package fsm

import "errors"

var (
	// ErrNotFound: the repository, tag, manifest or blob link does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNamespaceConflict: a repository name breaks a namespace rule. Errors
	// wrapping it say which rule.
	ErrNamespaceConflict = errors.New("namespace conflict")
	// ErrInvalid: a command is malformed.
	ErrInvalid = errors.New("invalid command")
)
