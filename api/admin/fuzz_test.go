package admin

import (
	"testing"

	"google.golang.org/protobuf/proto"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// FuzzParseStoredContent feeds arbitrary bytes, as a pushed manifest or
// image configuration, to what the image API parses them with: it must
// never panic, and whatever it accepts must encode as an answer (strings
// are valid UTF-8, as protobuf requires).
func FuzzParseStoredContent(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`))
	f.Add([]byte(`{"manifests":[{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","platform":{"os":"linux","architecture":"arm64","variant":"v8","os.version":"10"}}]}`))
	f.Add([]byte(`{"created":"2026-12-01T10:00:00Z","author":"a","config":{"Env":["A=b"],"Labels":{"k":"\xff"},"ExposedPorts":{"80/tcp":{}}},"history":[{"created":"2026-12-01T10:00:00Z","created_by":"x"}]}`))
	f.Add([]byte(`{"config":null,"layers":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := parseManifest(data); err == nil {
			img := &wharfv1.Image{Config: p.config, Layers: p.layers, Platforms: p.platforms}
			if _, err := proto.Marshal(img); err != nil {
				t.Fatalf("a parsed manifest does not encode: %v", err)
			}
		}
		if cfg, err := parseImageConfig(data); err == nil {
			if _, err := proto.Marshal(cfg); err != nil {
				t.Fatalf("a parsed configuration does not encode: %v", err)
			}
		}
	})
}
