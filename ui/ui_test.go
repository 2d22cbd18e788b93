package ui

import (
	"strings"
	"testing"
)

// A readme's markup and script never reach the page.
func TestRenderMarkdownIsInert(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // in the output
		never     []string // never in the output
	}{
		{"script tag", "# Hi\n\n<script>alert(1)</script>", []string{"<h1>Hi</h1>"}, []string{"<script"}},
		{"inline html", "text <img src=x onerror=alert(1)> more", []string{"text"}, []string{"onerror", "<img src=x"}},
		{"javascript link", "[click](javascript:alert(1))", []string{"click"}, []string{"javascript:"}},
		{"vbscript link", "[click](vbscript:msgbox)", []string{"click"}, []string{"vbscript:"}},
		{"html block", "<div onclick=\"x()\">hi</div>", nil, []string{"onclick", "<div"}},
		{"table", "| a | b |\n| - | - |\n| 1 | 2 |", []string{"<table>", "<td>1</td>"}, nil},
		{"code keeps text", "`<b>` and\n\n```\n<script>\n```", []string{"&lt;b&gt;", "&lt;script&gt;"}, []string{"<b>", "<script>"}},
		{"plain link", "[docs](https://example.com/a?b=1)", []string{`href="https://example.com/a?b=1"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(renderMarkdown(tt.src))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in %q", w, got)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(got, n) {
					t.Errorf("%q got through: %q", n, got)
				}
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/repositories/a/b?tab=images": "/ui/repositories/a/b?tab=images",
		"https://evil.example/ui/":        "/ui/",
		"//evil.example/ui/":              "/ui/",
		"/ui/\\evil":                      "/ui/",
		"/v2/":                            "/ui/",
		"":                                "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSRFTokenIsBoundToTheSecret(t *testing.T) {
	a, b := csrfToken("secret-a"), csrfToken("secret-b")
	if a == b || a != csrfToken("secret-a") || len(a) < 20 {
		t.Fatalf("tokens %q and %q", a, b)
	}
	if strings.Contains(a, "secret") {
		t.Fatalf("the token %q shows its secret", a)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestEveryPageParses(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"login", "error", "repositories", "repository"} {
		if pages[want] == nil {
			t.Errorf("no page %q", want)
		}
	}
}
