package features

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// refPyFloat is AppendPyFloat without the fast paths: every finite value
// goes through strconv's shortest digits.
func refPyFloat(v float64) string {
	switch {
	case v != v:
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return string(appendPyFloatStrconv(nil, v))
}

func sameAsStrconv(t *testing.T, v float64) {
	t.Helper()
	got := string(AppendPyFloat([]byte("x"), v))
	if want := "x" + refPyFloat(v); got != want {
		t.Fatalf("AppendPyFloat(%v) [bits %#016x] = %q, strconv gives %q", v, math.Float64bits(v), got[1:], want[1:])
	}
}

// shortDecimal is m/10^k as ParseFloat reads it.
func shortDecimal(m uint64, k int) float64 {
	v, err := strconv.ParseFloat(strconv.FormatUint(m, 10)+"e-"+strconv.Itoa(k), 64)
	if err != nil {
		panic(err)
	}
	return v
}

func TestAppendPyFloatMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		v := math.Float64frombits(rng.Uint64())
		sameAsStrconv(t, v)
	}
	// Short decimals, the common case, with their neighbours.
	for range 300000 {
		k := rng.IntN(20)
		m := rng.Uint64N(uint64(math.Pow10(1 + rng.IntN(17))))
		v := shortDecimal(m, k)
		for _, w := range []float64{v, -v, math.Nextafter(v, 0), math.Nextafter(v, math.Inf(1))} {
			sameAsStrconv(t, w)
		}
	}
	// Values next to the bounds of the fast path, to powers of two where
	// the ulp changes, and to powers of ten.
	for _, b := range []float64{1e-4, 1e7, 1e11, 0x1p23, 0x1p24, 0x1p36, 0x1p37, 0x1p49, 0x1p52, 1e-3, 0.1, 1, 10, 1e15} {
		v := b
		for range 1000 {
			v = math.Nextafter(v, 0)
			sameAsStrconv(t, v)
		}
		v = b
		for range 1000 {
			v = math.Nextafter(v, math.Inf(1))
			sameAsStrconv(t, v)
		}
	}
	// Halfway-looking values: x.y5 just above 2^49, where two one-digit
	// fractions both read back and strconv picks one.
	for i := range uint64(4096) {
		sameAsStrconv(t, 0x1p49+float64(i)*0.125)
		sameAsStrconv(t, 0x1p48+float64(i)*0.0625)
	}
}

// The fast path takes what it should: short decimals of data sets.
func TestAppendShortDecimalCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		k := 1 + rng.IntN(8)
		m := 1 + rng.Uint64N(100_000_000_000)
		if m%10 == 0 {
			continue
		}
		v := shortDecimal(m, k)
		if v < 1e-4 || v >= 1e7 {
			continue
		}
		if _, ok := appendShortDecimal(nil, v); !ok {
			t.Fatalf("%v (m=%d, k=%d) fell back to strconv", v, m, k)
		}
	}
	for _, v := range []float64{0.455, -0.2245, 0.0001, 123.456, 0.1, 1234567.00000001, 12345678.5, -99999999999.0001} {
		if _, ok := appendShortDecimal(nil, v); !ok {
			t.Errorf("%v fell back", v)
		}
	}
	// Outside the fast path: integers, tiny, large, and more digits.
	for _, v := range []float64{15, -1e10, 9.999999999999999e-05, 1e11 + 0.5, 0.30000000000000004, 0.123456789, 12345678.12345, math.Inf(1), math.NaN()} {
		if out, ok := appendShortDecimal(nil, v); ok {
			t.Errorf("%v took the fast path: %q", v, out)
		}
	}
}

// TestEightDigits checks every x < 10^8.
func TestEightDigits(t *testing.T) {
	var want [8]byte
	for x := range uint64(100_000_000) {
		fd := eightDigits(x)
		// want is x's digits; count it up like an odometer.
		if x > 0 {
			for i := 7; ; i-- {
				if want[i] < 9 {
					want[i]++
					break
				}
				want[i] = 0
			}
		}
		for i, d := range want {
			if byte(fd>>(8*i)) != d {
				t.Fatalf("eightDigits(%d) = %#016x", x, fd)
			}
		}
	}
}

func FuzzAppendPyFloatBits(f *testing.F) {
	for _, tc := range reprTable {
		f.Add(math.Float64bits(tc.v))
	}
	f.Add(math.Float64bits(0x1p49 + 0.25))
	f.Fuzz(func(t *testing.T, bits uint64) {
		sameAsStrconv(t, math.Float64frombits(bits))
	})
}

func FuzzAppendPyFloatDecimal(f *testing.F) {
	f.Add(uint64(455), uint8(3), false)
	f.Add(uint64(1), uint8(4), true)
	f.Add(uint64(9007199254740993), uint8(1), false)
	f.Add(uint64(5629499534213122), uint8(1), false)
	f.Add(uint64(12345678901234567890), uint8(19), true)
	f.Fuzz(func(t *testing.T, m uint64, k uint8, neg bool) {
		v := shortDecimal(m, int(k%30))
		if neg {
			v = -v
		}
		sameAsStrconv(t, v)
		sameAsStrconv(t, math.Nextafter(v, 0))
		sameAsStrconv(t, math.Nextafter(v, math.Inf(1)))
	})
}

// dataValues are typical measurements: 4096 random decimals below 20
// with one to four fraction digits (random, so that branch prediction
// cannot learn them).
var dataValues = func() []float64 {
	rng := rand.New(rand.NewPCG(9, 9))
	var vs []float64
	for len(vs) < 4096 {
		v := shortDecimal(1+rng.Uint64N(20000), 1+rng.IntN(4))
		if v != math.Trunc(v) {
			vs = append(vs, v)
		}
	}
	return vs
}()

func BenchmarkAppendPyFloatData(b *testing.B) {
	for _, bc := range []struct {
		name string
		fn   func([]byte, float64) []byte
	}{{"fast", AppendPyFloat}, {"strconv", appendPyFloatStrconv}} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 64<<10)
			n := 0
			for _, v := range dataValues {
				n += len(bc.fn(nil, v))
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				buf = buf[:0]
				for _, v := range dataValues {
					buf = bc.fn(buf, v)
				}
			}
		})
	}
}
