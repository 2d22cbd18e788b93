package ui

import (
	"bytes"
	"html/template"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// readmeRenderer renders readmes as GitHub-flavoured markdown, safely:
// goldmark without its unsafe option leaves raw HTML out and drops links
// and images to dangerous URLs (javascript:, vbscript:, file:, data: but
// images), so no markup or script of a readme reaches the page.
var readmeRenderer = goldmark.New(goldmark.WithExtensions(extension.GFM))

// renderMarkdown renders a readme for a template.
func renderMarkdown(src string) template.HTML {
	var b bytes.Buffer
	if err := readmeRenderer.Convert([]byte(src), &b); err != nil {
		return template.HTML(template.HTMLEscapeString(src))
	}
	return template.HTML(b.String()) //nolint:gosec // goldmark's safe mode escapes the source
}
