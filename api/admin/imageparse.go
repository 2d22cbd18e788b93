package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// manifestParts are what the API shows of a stored manifest: OCI and
// Docker image manifests and indexes share the fields read here.
type manifestParts struct {
	config    *wharfv1.Descriptor
	layers    []*wharfv1.Descriptor
	platforms []*wharfv1.Platform
}

// manifestFields is the union of an image manifest's and an index's
// fields.
type manifestFields struct {
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
}

func parseManifest(content []byte) (manifestParts, error) {
	var m manifestFields
	if err := json.Unmarshal(content, &m); err != nil {
		return manifestParts{}, fmt.Errorf("parse manifest: %w", err)
	}
	var p manifestParts
	if m.Config != nil {
		p.config = descriptor(*m.Config)
	}
	for _, l := range m.Layers {
		p.layers = append(p.layers, descriptor(l))
	}
	for _, c := range m.Manifests {
		pl := &wharfv1.Platform{Digest: c.Digest.String()}
		if c.Platform != nil {
			pl.Os, pl.Architecture, pl.Variant, pl.OsVersion = c.Platform.OS, c.Platform.Architecture, c.Platform.Variant, c.Platform.OSVersion
		}
		p.platforms = append(p.platforms, pl)
	}
	return p, nil
}

func descriptor(d v1.Descriptor) *wharfv1.Descriptor {
	return &wharfv1.Descriptor{Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size}
}

// imageConfigTypes are the media types of image configurations.
var imageConfigTypes = []string{
	v1.MediaTypeImageConfig,
	"application/vnd.docker.container.image.v1+json",
}

func isImageConfig(mediaType string) bool { return slices.Contains(imageConfigTypes, mediaType) }

// maxConfigBytes bounds the configuration blob GetImage reads; real ones
// are a few KiB, with long histories some hundred.
const maxConfigBytes = 4 << 20

// readImageConfig reads and parses an image configuration blob, checking
// its digest.
func readImageConfig(ctx context.Context, content BlobContent, d *wharfv1.Descriptor) (*wharfv1.ImageConfig, error) {
	if content == nil {
		return nil, errors.New("this node cannot read blobs")
	}
	if d.Size > maxConfigBytes {
		return nil, fmt.Errorf("the configuration is %d bytes, more than the %d this API reads", d.Size, maxConfigBytes)
	}
	dg, err := digest.Parse(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("configuration digest: %w", err)
	}
	rc, _, err := content.Stream(ctx, dg)
	if err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", dg, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", dg, err)
	}
	if got := dg.Algorithm().FromBytes(data); got != dg {
		return nil, fmt.Errorf("configuration %s: content has digest %s", dg, got)
	}
	return parseImageConfig(data)
}

func parseImageConfig(data []byte) (*wharfv1.ImageConfig, error) {
	var img v1.Image
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&img); err != nil {
		return nil, fmt.Errorf("parse configuration: %w", err)
	}
	out := &wharfv1.ImageConfig{
		Author:       img.Author,
		Os:           img.OS,
		Architecture: img.Architecture,
		Variant:      img.Variant,
		Labels:       img.Config.Labels,
		Env:          img.Config.Env,
		Entrypoint:   img.Config.Entrypoint,
		Cmd:          img.Config.Cmd,
		WorkingDir:   img.Config.WorkingDir,
		User:         img.Config.User,
	}
	out.CreatedUnixNanos = unixNanos(img.Created)
	for port := range img.Config.ExposedPorts {
		out.ExposedPorts = append(out.ExposedPorts, port)
	}
	slices.Sort(out.ExposedPorts)
	for _, h := range img.History {
		e := &wharfv1.HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer, Author: h.Author}
		e.CreatedUnixNanos = unixNanos(h.Created)
		out.History = append(out.History, e)
	}
	return out, nil
}

// unixNanos is t in Unix nanoseconds, or 0 (no time) for none and for a
// time an int64 of nanoseconds cannot hold: UnixNano is undefined before
// 1678 and after 2262, and tools such as cosign write the zero time,
// 0001-01-01, which came out as a date in 1754.
func unixNanos(t *time.Time) int64 {
	if t == nil || t.Year() < 1678 || t.Year() > 2261 {
		return 0
	}
	return t.UnixNano()
}
