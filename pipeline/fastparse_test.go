package pipeline

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// refParseDouble is parseDouble without the fast path.
func refParseDouble(f []byte) (float64, string) {
	f = trimBlanks(f)
	if len(f) == 0 {
		return 0, "empty number"
	}
	if bytes.IndexByte(f, '_') >= 0 {
		return 0, "not a number"
	}
	v, err := strconv.ParseFloat(string(f), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, "not a number"
	}
	if math.IsNaN(v) {
		return 0, "NaN is not allowed"
	}
	return v, ""
}

// checkParse compares scanPlain and parseDouble with strconv.ParseFloat.
func checkParse(t *testing.T, s string) {
	t.Helper()
	got, reason := parseDouble([]byte(s))
	want, wantReason := refParseDouble([]byte(s))
	if reason != wantReason || math.Float64bits(got) != math.Float64bits(want) {
		t.Fatalf("parseDouble(%q) = %v %q [%#x], want %v %q [%#x]", s, got, reason, math.Float64bits(got), want, wantReason, math.Float64bits(want))
	}
	v, n, text, ok := scanPlain([]byte(s))
	// Digits past the end of the field, in its array (the rest of a read
	// buffer), change nothing.
	for _, pad := range []string{"7", "7,", "7.5", "00000000"} {
		padded := append([]byte(s), pad...)[:len(s)]
		if v2, n2, text2, ok2 := scanPlain(padded); math.Float64bits(v2) != math.Float64bits(v) || n2 != n || text2 != text || ok2 != ok {
			t.Fatalf("scanPlain(%q) with %q past its end = %v %d %d %v, without %v %d %d %v", s, pad, v2, n2, text2, ok2, v, n, text, ok)
		}
	}
	if !ok {
		return
	}
	checkSpan(t, s, v, text)
	if n < len(s) && s[n] != ',' {
		t.Fatalf("scanPlain(%q) stopped at %d", s, n)
	}
	num := strings.Trim(s[:n], " \t")
	pf, err := strconv.ParseFloat(num, 64)
	if err != nil {
		t.Fatalf("scanPlain(%q) = %v, ParseFloat(%q): %v", s, v, num, err)
	}
	if math.Float64bits(v) != math.Float64bits(pf) {
		t.Fatalf("scanPlain(%q) = %v [%#x], ParseFloat %v [%#x]", s, v, math.Float64bits(v), pf, math.Float64bits(pf))
	}
}

// checkSpan checks the decision to copy the text of a number scanned from
// s with value v instead of formatting v: the Span's text must be exactly
// what the exact formatter writes.
func checkSpan(t *testing.T, s string, v float64, text uint32) {
	t.Helper()
	if text == 0 {
		return
	}
	got := string(appendSpanText(nil, []byte(s), text))
	if want := string(features.AppendPyFloat(nil, v)); got != want {
		t.Fatalf("scanPlain(%q): copies %q, but the repr of %v is %q", s, got, v, want)
	}
}

// appendSpanText appends the text of a features.Span in line, as the
// text writer copies it.
func appendSpanText(dst, line []byte, s uint32) []byte {
	start, n := int(s>>6), int(s&31)
	dst = append(dst, line[start:start+n]...)
	if s&(1<<5) != 0 {
		dst = append(dst, ".0"...)
	}
	return dst
}

// TestScanPlainRepr pins which texts are copied as their repr and which
// are formatted again.
func TestScanPlainRepr(t *testing.T) {
	copied := []string{"0", "-0", "15", "0.455", "-0.455", " 0.2245\t", "0.0001", "0.1", "123456789012345",
		"9007199254740991", "1000000000000000", "1234567890123456", "12345678901234.5", "0.123456789012345", "0.000123456789012345", "1.5,"}
	formatted := []string{"+1", "+0.5", "00", "007", "0.5490", "0.0", "-0.0", ".5", "5.", "0.00001", "0.00009",
		"00.5", "01.5", "0.1234567890123456", "1.000000000000001", "9007199254740993",
		"1e5", "12345678901234567", "0.30000000000000004"}
	for _, s := range copied {
		v, _, text, ok := scanPlain([]byte(s))
		if !ok || text == 0 {
			t.Errorf("%q: not copied (ok %v)", s, ok)
			continue
		}
		checkSpan(t, s, v, text)
	}
	for _, s := range formatted {
		if _, _, text, _ := scanPlain([]byte(s)); text != 0 {
			t.Errorf("%q: copied as %q", s, appendSpanText(nil, []byte(s), text))
		}
	}
}

var parseCases = []string{
	"0", "-0", "+0", "0.0", "-0.0", "-0.000", "00", "007", "0.5490", ".5", "5.", "-.5", "+5.", ".", "-", "+", "",
	" 1 ", "\t-2.5\t", " \t ", "1 2", "1.2.3", "1..2", "--1", "+-1", "1,2", "1e5", "1E+2", "1e", "0x1p-2",
	"inf", "-Inf", "NaN", "nan", "1_0", "_1", "1\r", "１",
	"9007199254740991", "9007199254740992", "9007199254740993", "-9007199254740993",
	"900719925474099.3", "0.9007199254740993", "4503599627370497.5",
	"1234567890123456789", "12345678901234567890", "1.234567890123456789", "0.0000000000000000001",
	"00000000000000000000001", "0.00000000000000000000001", "9999999999999999999", "99999999999999999999",
	"0.1", "0.2", "0.3", "0.30000000000000004", "123456789012345.67", "1797693134862315708145274237317043567981",
	"0.000000000000000000000000000001", "4.9e-324", "1e400",
}

func TestScanPlainMatchesParseFloat(t *testing.T) {
	for _, s := range parseCases {
		checkParse(t, s)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var b []byte
	for range 300000 {
		b = randomDecimal(rng, b[:0], rng.IntN(2) == 0)
		checkParse(t, string(b))
	}
}

// randomDecimal appends a random number text: a plain decimal of up to 12
// digits, or when messy up to 22 digits, sometimes with an exponent, a
// digit separator or a blank.
func randomDecimal(rng *rand.Rand, b []byte, messy bool) []byte {
	if messy && rng.IntN(8) == 0 {
		b = append(b, " \t"[rng.IntN(2)])
	}
	switch rng.IntN(6) {
	case 0:
		b = append(b, '-')
	case 1:
		b = append(b, '+')
	}
	nd := 1 + rng.IntN(12)
	if messy {
		nd = 1 + rng.IntN(22)
	}
	dot := rng.IntN(nd + 2)
	for i := range nd {
		if i == dot {
			b = append(b, '.')
		}
		if i == 0 && rng.IntN(4) == 0 {
			b = append(b, '0')
			continue
		}
		b = append(b, byte('0'+rng.IntN(10)))
	}
	if dot == nd {
		b = append(b, '.')
	}
	if !messy {
		return b
	}
	switch rng.IntN(20) {
	case 0:
		b = append(b, 'e')
		b = strconv.AppendInt(b, int64(rng.IntN(40)-20), 10)
	case 1:
		b = append(b, '_', '1')
	case 2:
		b = append(b, ' ')
	}
	return b
}

func FuzzScanPlain(f *testing.F) {
	for _, s := range parseCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkParse(t, s)
	})
}

// decodeBoth adds line to a decoder's Add (plain path first) and to
// another's general path, and fails if they disagree on the error.
func decodeBoth(t *testing.T, fast, general *decoder, line string, off int64) {
	t.Helper()
	fe := fast.Add([]byte(line), off)
	ge := general.addGeneral([]byte(line), off)
	switch {
	case (fe == nil) != (ge == nil):
		t.Fatalf("%q: Add error %v, general error %v", line, fe, ge)
	case fe != nil && *fe != *ge:
		t.Fatalf("%q: Add error %+v, general error %+v", line, *fe, *ge)
	}
}

// sameRecords fails unless a and b hold the same values, bit for bit.
func sameRecords(t *testing.T, a, b arrow.Record) {
	t.Helper()
	if !a.Schema().Equal(b.Schema()) || a.NumRows() != b.NumRows() {
		t.Fatalf("records differ: %v rows vs %v rows", a.NumRows(), b.NumRows())
	}
	for c := range int(a.NumCols()) {
		switch x := a.Column(c).(type) {
		case *array.String:
			y := b.Column(c).(*array.String)
			for r := range x.Len() {
				if x.Value(r) != y.Value(r) {
					t.Fatalf("column %d row %d: %q vs %q", c, r, x.Value(r), y.Value(r))
				}
			}
		case *array.Float64:
			y := b.Column(c).(*array.Float64)
			for r := range x.Len() {
				if math.Float64bits(x.Value(r)) != math.Float64bits(y.Value(r)) {
					t.Fatalf("column %d row %d: %v vs %v", c, r, x.Value(r), y.Value(r))
				}
			}
		case *array.Int64:
			y := b.Column(c).(*array.Int64)
			for r := range x.Len() {
				if x.Value(r) != y.Value(r) {
					t.Fatalf("column %d row %d: %v vs %v", c, r, x.Value(r), y.Value(r))
				}
			}
		default:
			t.Fatalf("column %d: unexpected type %T", c, x)
		}
	}
}

var lineCases = []string{
	"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15",
	"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15",
	"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15,",
	"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15,1",
	",1,2,3,4,5,6,7,8", `"",1,2,3,4,5,6,7,8`, `"M",1,2,3,4,5,6,7,8`, `M,"1",2,3,4,5,6,7,8`,
	`x"y,1,2,3,4,5,6,7,8`, `"a,b",1,2,3,4,5,6,7,8`, `"M,1,2,3,4,5,6,7,8`, `M,"1"x,2,3,4,5,6,7,8`,
	"é,1,2,3,4,5,6,7,8", "M\xff,1,2,3,4,5,6,7,8", "M,1,2,3,4,5,6,7,8\xc3", "M,1,2,3,4,5,6,7,\xc3",
	" M , 1 ,2\t,\t3,inf,-Inf,1e400,-0,0x1p-2", "M,1,,3,4,5,6,7,8", "M,1,2, \t ,4,5,6,7,8",
	"M,1,2,3,abc,5,6,7,8", "M,1,2,3,4,1_0,6,7,8", "M,1,2,3,4,5,6,7,NaN", "M,1,2,3,4,5,6, nan ,8",
	"M,-0,+0,.5,5.,1e5,9007199254740993,0.30000000000000004,12345678901234567890",
	"", ",", ",,,,,,,,", "M,1,2,3,4,5,6,7,8\r",
}

// TestDecoderPlainMatchesGeneral checks that the plain path adds exactly
// what the general rules add, and fails where they fail, in both modes.
func TestDecoderPlainMatchesGeneral(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	abalone := append([]string(nil), lineCases...)
	mixed := append([]string(nil), lineCases...)
	for range 20000 {
		abalone = append(abalone, randomLine(rng))
		mixed = append(mixed, randomMixedLine(rng))
	}
	for _, tc := range []struct {
		name  string
		spec  *features.Spec
		lines []string
	}{
		{"abalone", abaloneSpec(), abalone},
		{"mixed", mixedSpec(), mixed},
	} {
		if err := tc.spec.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, fit := range []bool{false, true} {
			mem := newChecked(t)
			fast := newDecoder(tc.spec, mem, &decodeOptions{FitOnly: fit})
			general := newDecoder(tc.spec, mem, &decodeOptions{FitOnly: fit})
			plain := 0
			for i, l := range tc.lines {
				if fast.addPlain([]byte(l), int64(i)) {
					plain++
					if fe := general.addGeneral([]byte(l), int64(i)); fe != nil {
						t.Fatalf("%s: %q: plain path took it, general path: %v", tc.name, l, fe)
					}
					continue
				}
				decodeBoth(t, fast, general, l, int64(i))
			}
			if plain < len(tc.lines)/2 {
				t.Errorf("%s, fit=%v: plain path took only %d of %d lines", tc.name, fit, plain, len(tc.lines))
			}
			a, b := fast.Flush(), general.Flush()
			sameRecords(t, a, b)
			a.Release()
			b.Release()
			fast.Release()
			general.Release()
		}
	}
}

// mixedSpec has strings between numbers, an unused string column and a
// categorical column last.
func mixedSpec() *features.Spec {
	return &features.Spec{
		Columns: []features.Column{
			{Name: "b", Type: features.ColumnString},
			{Name: "x", Type: features.ColumnDouble},
			{Name: "y", Type: features.ColumnDouble},
			{Name: "id", Type: features.ColumnString},
			{Name: "a", Type: features.ColumnString},
		},
		Categorical: []string{"a", "b"},
		Numeric:     []string{"x"},
		Label:       "y",
		Splits:      []features.Split{{Name: "train", Weight: 1}},
	}
}

// randomMixedLine makes a line for mixedSpec; a quarter of them are messy.
func randomMixedLine(rng *rand.Rand) string {
	messy := rng.IntN(4) == 0
	words := []string{"u", "vw", "é", `x"y`, "A1"}
	if messy {
		words = append(words, "", " ", `"q"`, `"r,s"`, `"t""u"`, "\xff", `"v"w`, `"`)
	}
	n := 5
	if messy && rng.IntN(10) == 0 {
		n += rng.IntN(3) - 1
	}
	var b []byte
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		if i == 1 || i == 2 {
			b = randomDecimal(rng, b, messy)
		} else {
			b = append(b, words[rng.IntN(len(words))]...)
		}
	}
	return string(b)
}

// randomLine makes an Abalone-like line; a quarter of them are messy:
// broken, quoted or with numbers outside the plain path.
func randomLine(rng *rand.Rand) string {
	messy := rng.IntN(4) == 0
	var b []byte
	if messy {
		b = append(b, []string{"M", "F", "I", "é", `"M"`, `"a,""b"""`, "", " M"}[rng.IntN(8)]...)
	} else {
		b = append(b, []string{"M", "F", "I", "é", "x\"y"}[rng.IntN(5)]...)
	}
	n := 8
	if messy && rng.IntN(10) == 0 {
		n += rng.IntN(3) - 1
	}
	for range n {
		b = append(b, ',')
		if messy && rng.IntN(10) == 0 {
			b = append(b, []string{"", " ", "abc", `"1.5"`, "nan", "inf", "\xff", "1_0", `"1"x`}[rng.IntN(9)]...)
			continue
		}
		b = randomDecimal(rng, b, messy)
	}
	return string(b)
}

func FuzzDecoderAdd(f *testing.F) {
	for _, l := range lineCases {
		f.Add(l, false, false)
		f.Add(l, true, false)
	}
	for _, l := range []string{"u,1,2,id,A1", `u,1,2,"i,d",A1`, "u,1,2,id,\"A1\"", "u,x,,id,A1", "u,1,2,id", "u,1,2,,A1,"} {
		f.Add(l, false, true)
		f.Add(l, true, true)
	}
	f.Fuzz(func(t *testing.T, line string, fit, mixed bool) {
		spec := abaloneSpec()
		if mixed {
			spec = mixedSpec()
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		fast := newDecoder(spec, mem, &decodeOptions{FitOnly: fit})
		defer fast.Release()
		general := newDecoder(spec, mem, &decodeOptions{FitOnly: fit})
		defer general.Release()
		decodeBoth(t, fast, general, line, 3)
		a, b := fast.Flush(), general.Flush()
		defer a.Release()
		defer b.Release()
		sameRecords(t, a, b)
	})
}

// TestDecoderTextWritesSameLines checks the source text columns end to
// end: lines decoded with them, transformed and written are the lines
// written from the values alone, for lines of every kind (plain, quoted,
// blank-padded, exponents, invalid), split into batches and sliced.
func TestDecoderTextWritesSameLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		name string
		spec *features.Spec
		line func(*rand.Rand) string
	}{
		{"abalone", abaloneSpec(), randomLine},
		{"mixed", mixedSpec(), randomMixedLine},
	} {
		if err := tc.spec.Validate(); err != nil {
			t.Fatal(err)
		}
		lines := append([]string(nil), lineCases...)
		for range 20000 {
			lines = append(lines, tc.line(rng))
		}
		mem := newChecked(t)
		plain := newDecoder(tc.spec, mem, nil)
		text := newDecoder(tc.spec, mem, &decodeOptions{Text: true})
		for i, l := range lines {
			if (plain.Add([]byte(l), int64(i)) == nil) != (text.Add([]byte(l), int64(i)) == nil) {
				t.Fatalf("%s: %q: the decoders disagree", tc.name, l)
			}
		}
		a, b := plain.Flush(), text.Flush()
		plain.Release()
		text.Release()
		if b.NumCols() != a.NumCols()+1+int64(len(tc.spec.Numeric))+1 {
			t.Errorf("%s: %d columns with text, %d without", tc.name, b.NumCols(), a.NumCols())
		}
		st := features.NewStats(tc.spec)
		if err := st.Add(a); err != nil {
			t.Fatal(err)
		}
		model, err := st.Model()
		if err != nil {
			t.Fatal(err)
		}
		copied := 0
		for _, s := range b.Schema().Fields() {
			if strings.HasSuffix(s.Name, ".__text") {
				for _, v := range b.Column(b.Schema().FieldIndices(s.Name)[0]).(*array.Uint32).Uint32Values() {
					if v != 0 {
						copied++
					}
				}
			}
		}
		if copied < int(a.NumRows())/2 {
			t.Errorf("%s: only %d texts of %d rows copied", tc.name, copied, a.NumRows())
		}
		for _, cut := range []int64{0, 1, 777} { // slices, as a batch is cut around a rejected row
			sa, sb := a.NewSlice(cut, a.NumRows()), b.NewSlice(cut, b.NumRows())
			want, got := transformText(t, model, sa, mem), transformText(t, model, sb, mem)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s from row %d: lines written from the source text differ", tc.name, cut)
			}
			sa.Release()
			sb.Release()
		}
		a.Release()
		b.Release()
	}
}

func transformText(t *testing.T, m *features.Model, rec arrow.Record, mem memory.Allocator) []byte {
	t.Helper()
	out, err := m.Transform(rec, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	return features.AppendAll(nil, out)
}

// TestValidUTF8 checks validUTF8 against utf8.Valid on lines of every
// length up to 70 with one byte of each kind at every place: ASCII,
// a continuation byte, a lead byte, an invalid byte, and whole runes.
func TestValidUTF8(t *testing.T) {
	for n := range 70 {
		line := bytes.Repeat([]byte("0.455,"), 12)[:n]
		if got := validUTF8(line); !got {
			t.Errorf("%q: not valid", line)
		}
		for at := range n {
			for _, c := range []byte{0x7f, 0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff} {
				l := bytes.Clone(line)
				l[at] = c
				if got, want := validUTF8(l), utf8.Valid(l); got != want {
					t.Errorf("%q: %v, want %v", l, got, want)
				}
			}
			for _, r := range []string{"é", "€", "😀"} {
				l := append(append(bytes.Clone(line[:at]), r...), line[at:]...)
				if got, want := validUTF8(l), utf8.Valid(l); got != want {
					t.Errorf("%q: %v, want %v", l, got, want)
				}
			}
		}
	}
}

func FuzzValidUTF8(f *testing.F) {
	for _, s := range []string{"", "0.455,0.365", "caf\xc3\xa9,1.5,2.25,3.125,4", "0.455,0.365,0.095\xff", "\xe2\x82\xac12345678901234567"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validUTF8(b), utf8.Valid(b); got != want {
			t.Errorf("validUTF8(%q) = %v, utf8.Valid says %v", b, got, want)
		}
	})
}
