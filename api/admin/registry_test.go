package admin

import (
	"testing"

	"connectrpc.com/connect"
)

func TestPageSize(t *testing.T) {
	tests := []struct {
		requested int32
		want      int
		wantErr   bool
	}{
		{0, defaultPageSize, false},
		{1, 1, false},
		{maxPageSize, maxPageSize, false},
		{maxPageSize + 1, maxPageSize, false},
		{-1, 0, true},
	}
	for _, tt := range tests {
		got, err := pageSize(tt.requested)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("pageSize(%d) = %d, %v; want %d, error %v", tt.requested, got, err, tt.want, tt.wantErr)
		}
		if err != nil && connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("pageSize(%d): code %v, want InvalidArgument", tt.requested, connect.CodeOf(err))
		}
	}
}
