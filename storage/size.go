package storage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Size is a number of bytes as shardprep's size settings take it
// (1048576, 64KiB, 32MiB, 1GiB, 10MB) and print it (String). *Size
// satisfies flag.Value.
type Size int64

// String writes a size for people: in whole binary units when it is a
// whole number of them (32MiB, as Set takes it), else in decimal units
// with one digit after the point (191.9 kB).
func (s Size) String() string {
	n := int64(s)
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// Set parses a positive size: a whole number of bytes, optionally followed
// by one of the units KiB, MiB, GiB (also K, M, G), KB, MB, GB or B.
func (s *Size) Set(v string) error {
	t := strings.TrimSpace(v)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return errors.New("not a positive size such as 1048576, 64KiB or 32MiB")
	}
	*s = Size(n * mult)
	return nil
}
