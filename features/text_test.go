package features

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var reprTable = []struct {
	v    float64
	want string
}{
	{1e-05, "1e-05"},
	{0.0001, "0.0001"},
	{1e+16, "1e+16"},
	{1e22, "1e+22"},
	{5e-324, "5e-324"},
	{math.Copysign(0, -1), "-0.0"},
	{0.0, "0.0"},
	{0.30000000000000004, "0.30000000000000004"},
	{1234567890123456.8, "1234567890123456.8"},
	{9999999999999998.0, "9999999999999998.0"},
	{1000000000000000.0, "1000000000000000.0"},
	{15.0, "15.0"},
	{123456789.0, "123456789.0"},
	{1.2345678901234567e+19, "1.2345678901234567e+19"},
	{2.2250738585072014e-308, "2.2250738585072014e-308"},
	{1e-310, "1e-310"},
	{-1.5, "-1.5"},
	{math.Inf(1), "inf"},
	{math.Inf(-1), "-inf"},
	{math.NaN(), "nan"},
	// More layouts around the boundaries.
	{9.999999999999999e-05, "9.999999999999999e-05"},
	{0.00012345, "0.00012345"},
	{-0.0001, "-0.0001"},
	{0.1, "0.1"},
	{0.455, "0.455"},
	{100.0, "100.0"},
	{-7.0, "-7.0"},
	{1.5e300, "1.5e+300"},
	{-1e-100, "-1e-100"},
	{1.7976931348623157e+308, "1.7976931348623157e+308"},
	{12345678901234567890.0, "1.2345678901234567e+19"},
	{9007199254740993.0, "9007199254740992.0"},
	{0.7999999999999999, "0.7999999999999999"},
	{2.5e-05, "2.5e-05"},
	{123.456, "123.456"},
}

func TestAppendPyFloatTable(t *testing.T) {
	for _, tc := range reprTable {
		if got := string(AppendPyFloat(nil, tc.v)); got != tc.want {
			t.Errorf("AppendPyFloat(%b) = %q, want %q", math.Float64bits(tc.v), got, tc.want)
		}
	}
	// Appends to what is there.
	if got := string(AppendPyFloat([]byte("x="), 2)); got != "x=2.0" {
		t.Errorf("append = %q", got)
	}
}

var (
	positionalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.([0-9]+)$`)
	exponentRE   = regexp.MustCompile(`^-?[1-9](\.[0-9]*[1-9])?e[+-]([1-9][0-9]{1,2}|0[1-9])$`)
)

// checkPyFloat checks the layout rule for v's text and that it reads back
// to v's bits.
func checkPyFloat(t *testing.T, v float64) {
	t.Helper()
	s := string(AppendPyFloat(nil, v))
	switch {
	case math.IsNaN(v):
		if s != "nan" {
			t.Fatalf("NaN -> %q", s)
		}
		return
	case math.IsInf(v, 1):
		if s != "inf" {
			t.Fatalf("+Inf -> %q", s)
		}
		return
	case math.IsInf(v, -1):
		if s != "-inf" {
			t.Fatalf("-Inf -> %q", s)
		}
		return
	}
	back, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%v -> %q does not parse: %v", v, s, err)
	}
	if math.Float64bits(back) != math.Float64bits(v) {
		t.Fatalf("%b -> %q -> %b", math.Float64bits(v), s, math.Float64bits(back))
	}
	if math.Signbit(v) != strings.HasPrefix(s, "-") {
		t.Fatalf("%v -> %q: sign", v, s)
	}
	a := math.Abs(v)
	if a == 0 || (a >= 1e-4 && a < 1e16) {
		m := positionalRE.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("%v -> %q: want positional form", v, s)
		}
		frac := m[2]
		if a == math.Trunc(a) {
			if frac != "0" {
				t.Fatalf("%v -> %q: an integer ends in .0", v, s)
			}
		} else if strings.HasSuffix(frac, "0") {
			t.Fatalf("%v -> %q: trailing zero in the fraction", v, s)
		}
		// The significant digits are Go's shortest round-trip digits.
		got := strings.Trim(strings.NewReplacer("-", "", ".", "").Replace(s), "0")
		e := strconv.FormatFloat(a, 'e', -1, 64)
		want := strings.Trim(strings.Replace(e[:strings.IndexByte(e, 'e')], ".", "", 1), "0")
		if got != want {
			t.Fatalf("%v -> %q: digits %q, shortest digits %q", v, s, got, want)
		}
	} else {
		if !exponentRE.MatchString(s) {
			t.Fatalf("%v -> %q: want exponent form", v, s)
		}
		// The digits are Go's shortest round-trip digits.
		if want := strconv.FormatFloat(v, 'e', -1, 64); s != want {
			t.Fatalf("%v -> %q, shortest 'e' form %q", v, s, want)
		}
	}
}

func FuzzAppendPyFloat(f *testing.F) {
	for _, tc := range reprTable {
		f.Add(math.Float64bits(tc.v))
	}
	for _, v := range []float64{math.Nextafter(1e-4, 0), math.Nextafter(1e16, 0), math.Nextafter(1e16, 2e16), math.SmallestNonzeroFloat64, math.MaxFloat64, 1 << 53, 0.5, 3.14159} {
		f.Add(math.Float64bits(v))
		f.Add(math.Float64bits(-v))
	}
	f.Add(uint64(0x7ff8000000000001)) // a NaN with payload
	f.Add(uint64(0xfff0000000000001)) // a negative NaN
	f.Fuzz(func(t *testing.T, bits uint64) {
		checkPyFloat(t, math.Float64frombits(bits))
	})
}

// TestAppendPyFloatBoundaries walks the floats next to the layout bounds
// and the powers of ten in between.
func TestAppendPyFloatBoundaries(t *testing.T) {
	for e := -325; e <= 308; e++ {
		p := math.Pow(10, float64(e))
		for _, v := range []float64{p, math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)), 3 * p, 7.5 * p} {
			checkPyFloat(t, v)
			checkPyFloat(t, -v)
		}
	}
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{math.Nextafter(1e-4, 0), "9.999999999999999e-05"},
		{math.Nextafter(1e16, 0), "9999999999999998.0"},
		{math.Nextafter(1e16, 2e16), "1.0000000000000002e+16"},
	} {
		if got := string(AppendPyFloat(nil, tc.v)); got != tc.want {
			t.Errorf("AppendPyFloat(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestAppendPyFloatNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendPyFloat(buf[:0], 1.2345678901234567e+19)
		buf = AppendPyFloat(buf[:0], 0.2245)
	})
	if allocs != 0 {
		t.Errorf("AppendPyFloat allocates %v times per run", allocs)
	}
}

func BenchmarkAppendPyFloat(b *testing.B) {
	values := []float64{15, 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15, 1, 0, 1e-05, 1.2345678901234567e+19}
	buf := make([]byte, 0, 512)
	n := 0
	for _, v := range values {
		n += len(AppendPyFloat(nil, v))
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for _, v := range values {
			buf = AppendPyFloat(buf, v)
		}
	}
}
