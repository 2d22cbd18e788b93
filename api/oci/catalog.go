package oci

import (
	"context"
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
		return h.visibleRepositories(r.Context(), last, n)
	})
	if err != nil {
		return fmt.Errorf("list repositories: %w", err)
	}
	if more {
		setNextLink(w, "/v2/_catalog", p, repos)
	}
	return writeJSON(w, r, http.StatusOK, "application/json", catalog{Repositories: repos})
}

// visibleRepositories returns up to n repositories after last that the
// caller may pull.
func (h *Handler) visibleRepositories(ctx context.Context, last string, n int) ([]string, error) {
	var out []string
	for len(out) < n {
		batch, err := h.meta.ListRepositories(ctx, last, n)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		last = batch[len(batch)-1]
		full := len(batch) == n
		if batch, err = h.visible(ctx, batch); err != nil {
			return nil, err
		}
		out = append(out, batch...)
		if !full {
			break
		}
	}
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}
