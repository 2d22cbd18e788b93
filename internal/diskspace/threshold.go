package diskspace

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Threshold is an amount of free space: a number of bytes, or a percentage
// of the filesystem's size (which follows the filesystem when it grows). It
// is a pflag.Value, so it can be a command-line flag.
type Threshold struct {
	bytes   int64
	percent float64 // used instead of bytes when > 0
}

// Bytes returns a Threshold of n bytes.
func Bytes(n int64) Threshold { return Threshold{bytes: max(n, 0)} }

// Percent returns a Threshold of p percent of the filesystem's size.
func Percent(p float64) Threshold { return Threshold{percent: p} }

// Of returns the threshold in bytes on a filesystem of total bytes.
func (t Threshold) Of(total int64) int64 {
	if t.percent > 0 {
		return int64(float64(total) * t.percent / 100)
	}
	return t.bytes
}

// Scaled returns the threshold multiplied by f (0 < f <= 1), as bytes or as
// a percentage like t.
func (t Threshold) Scaled(f float64) Threshold {
	if t.percent > 0 {
		return Threshold{percent: t.percent * f}
	}
	return Threshold{bytes: int64(float64(t.bytes) * f)}
}

// IsZero reports whether the threshold is 0 bytes (or 0%).
func (t Threshold) IsZero() bool { return t.percent <= 0 && t.bytes == 0 }

// units are the suffixes ParseThreshold accepts, lower-cased: IEC
// (powers of 1024) and SI (powers of 1000).
var units = map[string]int64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

// ParseThreshold parses a size such as "1GiB", "500MB", "1.5GiB" or
// "1073741824" (bytes), or a percentage of the filesystem such as "5%".
// KiB, MiB, GiB and TiB are powers of 1024; KB, MB, GB and TB of 1000.
func ParseThreshold(s string) (Threshold, error) {
	v := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || f >= 100 || math.IsNaN(f) {
			return Threshold{}, fmt.Errorf("size %q: a percentage must be a number from 0 up to 100", s)
		}
		return Percent(f), nil
	}
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(v)
	}
	unit, ok := units[strings.ToLower(strings.TrimSpace(v[i:]))]
	if !ok {
		return Threshold{}, fmt.Errorf("size %q: unknown unit %q; use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB or a percentage such as 5%%", s, v[i:])
	}
	f, err := strconv.ParseFloat(v[:i], 64)
	if err != nil || f < 0 || f*float64(unit) > math.MaxInt64/2 {
		return Threshold{}, fmt.Errorf("size %q: not a size", s)
	}
	return Bytes(int64(f * float64(unit))), nil
}

// String formats the threshold so that ParseThreshold reads it back: a
// percentage, or bytes in the largest IEC unit that divides them.
func (t Threshold) String() string {
	if t.percent > 0 {
		return strconv.FormatFloat(t.percent, 'f', -1, 64) + "%"
	}
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if t.bytes >= u.size && t.bytes%u.size == 0 {
			return strconv.FormatInt(t.bytes/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(t.bytes, 10)
}

// Set implements pflag.Value.
func (t *Threshold) Set(s string) error {
	v, err := ParseThreshold(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Type implements pflag.Value.
func (*Threshold) Type() string { return "size" }

// FormatBytes formats n bytes for people, e.g. "12.3 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, i := float64(n), 0
	for ; (f >= unit || f <= -unit) && i < 4; i++ {
		f /= unit
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + []string{"B", "KiB", "MiB", "GiB", "TiB"}[i]
}
