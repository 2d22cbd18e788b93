package oci

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types.
const (
	mediaTypeOCIManifest         = v1.MediaTypeImageManifest
	mediaTypeOCIIndex            = v1.MediaTypeImageIndex
	mediaTypeDockerManifest      = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// isIndexType tells, for each supported manifest media type, whether it is
// an index (a list of manifests) rather than an image manifest.
var isIndexType = map[string]bool{
	mediaTypeOCIManifest:        false,
	mediaTypeDockerManifest:     false,
	mediaTypeOCIIndex:           true,
	mediaTypeDockerManifestList: true,
}

// parsedManifest is what the registry records about a validated manifest.
type parsedManifest struct {
	mediaType    string
	subject      digest.Digest // empty without a subject
	artifactType string        // what the referrers API reports
	annotations  map[string]string
	blobs        []digest.Digest // distributable config and layers, without duplicates
	manifests    []digest.Digest // child manifests of an index, without duplicates
}

// manifestJSON holds the fields of every supported manifest format.
type manifestJSON struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parseManifest validates a manifest pushed with the given Content-Type and
// returns what the registry needs to know about it. Errors are apiErrors
// (MANIFEST_INVALID or UNSUPPORTED) that say what is wrong.
func parseManifest(contentType string, body []byte) (*parsedManifest, error) {
	ct, err := parseContentType(contentType)
	if err != nil {
		return nil, err
	}
	if isSchema1Type(ct) {
		return nil, errSchema1()
	}
	var m manifestJSON
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errManifestInvalid("manifest is not a valid JSON document: %v", err)
	}
	if m.SchemaVersion != nil && *m.SchemaVersion == 1 || isSchema1Type(m.MediaType) {
		return nil, errSchema1()
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return nil, errManifestInvalid("schemaVersion must be 2")
	}
	mediaType, err := resolveMediaType(ct, &m)
	if err != nil {
		return nil, err
	}
	if isIndexType[mediaType] {
		return parseIndex(mediaType, &m)
	}
	return parseImage(mediaType, &m)
}

// parseContentType returns the media type of a Content-Type header,
// without parameters.
func parseContentType(contentType string) (string, error) {
	if strings.TrimSpace(contentType) == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", errManifestInvalid("invalid Content-Type %q: %v", contentType, err)
	}
	return mt, nil
}

func isSchema1Type(mt string) bool {
	return mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Signed
}

// resolveMediaType decides the manifest's media type from the Content-Type
// and the mediaType field, which must agree when both are set. A generic
// or missing Content-Type defers to the body; a body without mediaType is
// recognised by its fields.
func resolveMediaType(ct string, m *manifestJSON) (string, error) {
	generic := ct == "" || ct == "application/json" || ct == "application/octet-stream"
	switch {
	case !generic && m.MediaType != "" && m.MediaType != ct:
		return "", errManifestInvalid("the manifest's mediaType %q does not match its Content-Type %q; send the manifest's media type as Content-Type", m.MediaType, ct)
	case !generic:
	case m.MediaType != "":
		ct = m.MediaType
	case m.Manifests != nil:
		ct = mediaTypeOCIIndex
	case m.Config != nil:
		ct = mediaTypeOCIManifest
	default:
		return "", errManifestInvalid("cannot tell the manifest's type: set Content-Type to its media type")
	}
	if _, ok := isIndexType[ct]; !ok {
		return "", newError(http.StatusUnsupportedMediaType, CodeUnsupported,
			"manifest media type %q is not supported; use %s", ct, strings.Join(supportedManifestTypes(), ", "))
	}
	return ct, nil
}

func supportedManifestTypes() []string {
	types := make([]string, 0, len(isIndexType))
	for mt := range isIndexType {
		types = append(types, mt)
	}
	slices.Sort(types)
	return types
}

// parseImage validates an OCI image manifest or Docker schema 2 manifest.
func parseImage(mediaType string, m *manifestJSON) (*parsedManifest, error) {
	if m.Config == nil {
		return nil, errManifestInvalid("image manifest has no config descriptor")
	}
	if len(m.Manifests) > 0 {
		return nil, errManifestInvalid("image manifest has a manifests list; push it as an index instead")
	}
	if err := validateDescriptor(*m.Config, "config"); err != nil {
		return nil, err
	}
	p, err := newParsed(mediaType, m)
	if err != nil {
		return nil, err
	}
	if p.artifactType == "" {
		p.artifactType = m.Config.MediaType
	}
	p.blobs = []digest.Digest{m.Config.Digest}
	for i, l := range m.Layers {
		if err := validateDescriptor(l, fmt.Sprintf("layers[%d]", i)); err != nil {
			return nil, err
		}
		if !isForeign(l) && !slices.Contains(p.blobs, l.Digest) {
			p.blobs = append(p.blobs, l.Digest)
		}
	}
	return p, nil
}

// parseIndex validates an OCI image index or Docker manifest list.
func parseIndex(mediaType string, m *manifestJSON) (*parsedManifest, error) {
	if m.Config != nil || len(m.Layers) > 0 {
		return nil, errManifestInvalid("index has a config or layers; push it as an image manifest instead")
	}
	p, err := newParsed(mediaType, m)
	if err != nil {
		return nil, err
	}
	for i, c := range m.Manifests {
		if err := validateDescriptor(c, fmt.Sprintf("manifests[%d]", i)); err != nil {
			return nil, err
		}
		if !slices.Contains(p.manifests, c.Digest) {
			p.manifests = append(p.manifests, c.Digest)
		}
	}
	return p, nil
}

// newParsed fills the fields common to images and indexes.
func newParsed(mediaType string, m *manifestJSON) (*parsedManifest, error) {
	p := &parsedManifest{
		mediaType:    mediaType,
		artifactType: m.ArtifactType,
		annotations:  m.Annotations,
	}
	if m.Subject != nil {
		if err := validateDescriptor(*m.Subject, "subject"); err != nil {
			return nil, err
		}
		p.subject = m.Subject.Digest
	}
	return p, nil
}

// validateDescriptor checks the fields every descriptor needs, and that
// embedded data matches the descriptor.
func validateDescriptor(d v1.Descriptor, field string) error {
	if d.MediaType == "" {
		return errManifestInvalid("%s has no mediaType", field)
	}
	if err := d.Digest.Validate(); err != nil {
		return errManifestInvalid("%s has an invalid digest %q: %v", field, d.Digest, err).
			withDetail(map[string]string{"digest": d.Digest.String()})
	}
	if d.Size < 0 {
		return errManifestInvalid("%s has a negative size", field)
	}
	if d.Data == nil {
		return nil
	}
	if int64(len(d.Data)) != d.Size {
		return errManifestInvalid("%s has %d bytes of data but size %d", field, len(d.Data), d.Size)
	}
	if d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
		return errManifestInvalid("%s has data that does not match its digest %s", field, d.Digest)
	}
	return nil
}

// isForeign reports whether a layer lives outside the registry:
// non-distributable and foreign layers, or layers with URLs.
func isForeign(d v1.Descriptor) bool {
	return strings.Contains(d.MediaType, "nondistributable") ||
		strings.Contains(d.MediaType, "foreign") ||
		len(d.URLs) > 0
}

func errManifestInvalid(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, CodeManifestInvalid, format, args...)
}

func errSchema1() *apiError {
	return errManifestInvalid("Docker image manifest schema 1 is not supported: it is deprecated and " +
		"unsafe. Convert the image to Docker schema 2 or OCI, for example with " +
		"`skopeo copy --format v2s2 <src> <dst>` (or --format oci), or pull it and push it " +
		"again with a current Docker")
}
