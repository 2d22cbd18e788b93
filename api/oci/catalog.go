package oci

import (
	"fmt"
	"net/http"
)

// catalog is the body of a catalog response.
type catalog struct {
	Repositories []string `json:"repositories"`
}

// getCatalog lists repositories in lexical order, paginated.
func (h *Handler) getCatalog(w http.ResponseWriter, r *http.Request, _ route) error {
	p, err := parsePage(r.URL.Query())
	if err != nil {
		return err
	}
	repos, more, err := p.list(func(last string, n int) ([]string, error) {
		return h.meta.ListRepositories(r.Context(), last, n)
	})
	if err != nil {
		return fmt.Errorf("list repositories: %w", err)
	}
	if more {
		setNextLink(w, "/v2/_catalog", p, repos)
	}
	return writeJSON(w, r, http.StatusOK, "application/json", catalog{Repositories: repos})
}
