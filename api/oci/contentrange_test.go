package oci

import "testing"

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-0", 0, 0, true},
		{"0-1023", 0, 1023, true},
		{"1024-2047", 1024, 2047, true},
		{"bytes 10-19/*", 10, 19, true},
		{"bytes 10-19/20", 10, 19, true},
		{"", 0, 0, false},
		{"5", 0, 0, false},
		{"5-", 0, 0, false},
		{"-5", 0, 0, false},
		{"10-9", 0, 0, false},
		{"+1-5", 0, 0, false},
		{"1--5", 0, 0, false},
		{"a-b", 0, 0, false},
		{"0-99999999999999999999", 0, 0, false},
		{"bytes 10-19/19", 0, 0, false},
		{"bytes 10-19/x", 0, 0, false},
	}
	for _, tt := range tests {
		start, end, err := parseContentRange(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseContentRange(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (start != tt.start || end != tt.end) {
			t.Errorf("parseContentRange(%q) = %d, %d, want %d, %d", tt.in, start, end, tt.start, tt.end)
		}
	}
}
