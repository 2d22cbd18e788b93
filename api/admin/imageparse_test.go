package admin

import (
	"testing"
	"time"
)

// cosign's signature images carry the zero time, 0001-01-01, which
// UnixNano cannot represent: it came out as a date in 1754.
func TestImageConfigTimesOutOfRangeAreNone(t *testing.T) {
	cosign := `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],` +
		`"os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`
	cfg, err := parseImageConfig([]byte(cosign))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CreatedUnixNanos != 0 || len(cfg.History) != 1 || cfg.History[0].CreatedUnixNanos != 0 {
		t.Errorf("created %d, history %v; want 0 (none) for the zero time", cfg.CreatedUnixNanos, cfg.History)
	}
	cfg, err = parseImageConfig([]byte(`{"created":"2026-01-01T00:00:00Z","history":[{"created":"2026-01-01T00:00:00Z"}],"os":"linux","architecture":"amd64","config":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if cfg.CreatedUnixNanos != want || cfg.History[0].CreatedUnixNanos != want {
		t.Errorf("created %d, history %v; want %d", cfg.CreatedUnixNanos, cfg.History, want)
	}
}
