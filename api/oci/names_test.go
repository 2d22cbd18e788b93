package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestParseReference(t *testing.T) {
	sha256 := "sha256:" + strings.Repeat("a", 64)
	sha512 := "sha512:" + strings.Repeat("b", 128)
	tests := []struct {
		name, ref string
		wantTag   string
		wantDig   string
		wantCode  ErrorCode
	}{
		{name: "foo", ref: "latest", wantTag: "latest"},
		{name: "a/b/c", ref: "v1.2.3-rc_1", wantTag: "v1.2.3-rc_1"},
		{name: "a.b_c__d---e/f", ref: "_x", wantTag: "_x"},
		{name: "foo", ref: sha256, wantDig: sha256},
		{name: "foo", ref: sha512, wantDig: sha512},
		{name: "foo", ref: strings.Repeat("t", 128), wantTag: strings.Repeat("t", 128)},
		{name: strings.Repeat("a", 255), ref: "x", wantTag: "x"},

		{name: strings.Repeat("a", 256), ref: "x", wantCode: CodeNameInvalid},
		{name: "Foo", ref: "x", wantCode: CodeNameInvalid},
		{name: "foo/", ref: "x", wantCode: CodeNameInvalid},
		{name: "/foo", ref: "x", wantCode: CodeNameInvalid},
		{name: "foo//bar", ref: "x", wantCode: CodeNameInvalid},
		{name: "foo..bar", ref: "x", wantCode: CodeNameInvalid},
		{name: "foo___bar", ref: "x", wantCode: CodeNameInvalid},
		{name: "-foo", ref: "x", wantCode: CodeNameInvalid},
		{name: "", ref: "x", wantCode: CodeNameInvalid},
		{name: "foo", ref: "", wantCode: CodeTagInvalid},
		{name: "foo", ref: ".x", wantCode: CodeTagInvalid},
		{name: "foo", ref: "-x", wantCode: CodeTagInvalid},
		{name: "foo", ref: strings.Repeat("t", 129), wantCode: CodeTagInvalid},
		{name: "foo", ref: "a/b", wantCode: CodeTagInvalid},
		{name: "foo", ref: "sha256:baddigeststring", wantCode: CodeDigestInvalid},
		{name: "foo", ref: "sha256:" + strings.Repeat("A", 64), wantCode: CodeDigestInvalid},
		{name: "foo", ref: "sha384:" + strings.Repeat("a", 96), wantCode: CodeDigestInvalid},
		{name: "foo", ref: "md5:" + strings.Repeat("a", 32), wantCode: CodeDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name+"@"+tt.ref, func(t *testing.T) {
			ref, err := parseReference(tt.name, tt.ref)
			if tt.wantCode != "" {
				var ae *apiError
				if !errors.As(err, &ae) || ae.code != tt.wantCode {
					t.Fatalf("error %v, want code %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if ref.tag != tt.wantTag || ref.digest.String() != tt.wantDig || ref.name != tt.name {
				t.Fatalf("got %+v, want tag %q digest %q", ref, tt.wantTag, tt.wantDig)
			}
		})
	}
}
