package oci

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// getReferrers lists the manifests of a repository whose subject is the
// given digest, as an OCI index. An unknown subject has no referrers; the
// answer is still 200 with an empty list. ?artifactType= filters the list.
func (h *Handler) getReferrers(w http.ResponseWriter, r *http.Request, rt route) error {
	subject, err := parseDigest(rt.arg)
	if err != nil {
		return err
	}
	referrers, err := h.meta.Referrers(r.Context(), rt.name, subject)
	if err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return fmt.Errorf("list referrers of %s in %s: %w", subject, rt.name, err)
	}
	filter := r.URL.Query()["artifactType"]
	if len(filter) > 0 {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	index := v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: referrerDescriptors(referrers, filter),
	}
	return writeJSON(w, r, http.StatusOK, v1.MediaTypeImageIndex, index)
}

// referrerDescriptors describes the referrers whose artifact type is in
// filter, or all of them when filter is empty.
func referrerDescriptors(referrers []*fsmpb.Manifest, filter []string) []v1.Descriptor {
	descs := []v1.Descriptor{}
	for _, m := range referrers {
		if len(filter) > 0 && !slices.Contains(filter, m.GetArtifactType()) {
			continue
		}
		descs = append(descs, v1.Descriptor{
			MediaType:    m.GetMediaType(),
			Digest:       digest.Digest(m.GetDigest()),
			Size:         int64(len(m.GetContent())),
			ArtifactType: m.GetArtifactType(),
			Annotations:  m.GetAnnotations(),
		})
	}
	return descs
}
