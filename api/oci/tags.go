package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/wharf-registry/wharf/fsm"
)

// tagList is the body of a tag list response.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// getTags lists the tags of a repository in lexical order, paginated.
func (h *Handler) getTags(w http.ResponseWriter, r *http.Request, rt route) error {
	p, err := parsePage(r.URL.Query())
	if err != nil {
		return err
	}
	ctx := r.Context()
	tags, more, err := p.list(func(last string, n int) ([]string, error) {
		return h.meta.ListTags(ctx, rt.name, last, n)
	})
	if errors.Is(err, fsm.ErrNotFound) {
		return errNameUnknown(rt.name)
	}
	if err != nil {
		return fmt.Errorf("list tags of %s: %w", rt.name, err)
	}
	if p.n == 0 {
		// ListTags was not asked; still report a missing repository.
		if err := h.requireRepository(ctx, rt.name); err != nil {
			return err
		}
	}
	if more {
		setNextLink(w, "/v2/"+rt.name+"/tags/list", p, tags)
	}
	return writeJSON(w, r, http.StatusOK, "application/json", tagList{Name: rt.name, Tags: tags})
}

// requireRepository reports NAME_UNKNOWN if repo does not exist.
func (h *Handler) requireRepository(ctx context.Context, repo string) error {
	ok, err := h.meta.RepositoryExists(ctx, repo)
	if err != nil {
		return fmt.Errorf("check repository %s: %w", repo, err)
	}
	if !ok {
		return errNameUnknown(repo)
	}
	return nil
}

func errNameUnknown(repo string) error {
	return newError(http.StatusNotFound, CodeNameUnknown,
		"repository %s not found; push a blob or manifest to create it", repo).
		withDetail(map[string]string{"name": repo})
}
