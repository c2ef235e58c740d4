package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

type lineAt struct {
	Line string
	Off  int64
}

func (l lineAt) String() string { return fmt.Sprintf("%q@%d", l.Line, l.Off) }

// refLines is a byte-at-a-time model of the line rules: every line of the
// object (blank ones included, BOM not removed) with its offset.
func refLines(data []byte) []lineAt {
	var out []lineAt
	start := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\n':
			out = append(out, lineAt{string(data[start:i]), int64(start)})
			start = i + 1
		case '\r':
			out = append(out, lineAt{string(data[start:i]), int64(start)})
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	if start < len(data) {
		out = append(out, lineAt{string(data[start:]), int64(start)})
	}
	return out
}

// refNonBlank applies BOM removal and blank skipping to refLines.
func refNonBlank(data []byte) []lineAt {
	var out []lineAt
	for _, l := range refLines(data) {
		if l.Off == 0 {
			l.Line = strings.TrimPrefix(l.Line, "\uFEFF")
		}
		if l.Line != "" {
			out = append(out, l)
		}
	}
	return out
}

// readSplit reads all lines of split [start, end) of data through r.
func readSplit(t testing.TB, r io.Reader, start, end int64, opts *lineOptions) ([]lineAt, *lineReader) {
	t.Helper()
	lr := newLineReader(r, start, end, opts)
	var out []lineAt
	for {
		line, off, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("split [%d,%d): %v", start, end, err)
		}
		out = append(out, lineAt{string(line), off})
	}
	if _, _, err := lr.Next(); err != io.EOF {
		t.Fatalf("Next after EOF: %v", err)
	}
	return out, lr
}

// readLong reads all lines of split [start, end) of data through r, as
// readSplit does, but takes lines longer than the limit: it returns the
// lines as "text@offset" and the long ones as "long(offset,length,prefix)".
func readLong(t testing.TB, r io.Reader, start, end int64, opts *lineOptions) (string, *lineReader) {
	t.Helper()
	out, lr := readLongLines(t, r, start, end, opts, true)
	return strings.Join(out, " "), lr
}

// readLongLines is readLong's list, with or without the long lines'
// prefixes.
func readLongLines(t testing.TB, r io.Reader, start, end int64, opts *lineOptions, prefix bool) ([]string, *lineReader) {
	t.Helper()
	lr := newLineReader(r, start, end, opts)
	var out []string
	for {
		line, off, err := lr.Next()
		if err == io.EOF {
			break
		}
		if long, ok := err.(*lineTooLongError); ok {
			if long.Offset != off {
				t.Fatalf("long line at %d returned with offset %d", long.Offset, off)
			}
			if prefix {
				out = append(out, fmt.Sprintf("long(%d,%d,%s)", long.Offset, long.Length, long.Prefix))
			} else {
				out = append(out, fmt.Sprintf("long(%d,%d)", long.Offset, long.Length))
			}
			continue
		}
		if err != nil {
			t.Fatalf("split [%d,%d): %v", start, end, err)
		}
		out = append(out, fmt.Sprintf("%s@%d", line, off))
	}
	return out, lr
}

// refMax is the model of a read with lines longer than max skipped: the
// lines of refNonBlank as readLongLines gives them without prefixes. A
// line's length for the limit includes a byte order mark.
func refMax(data []byte, max int) []string {
	var out []string
	for _, l := range refLines(data) {
		text := l.Line
		if l.Off == 0 {
			text = strings.TrimPrefix(text, "\uFEFF")
		}
		switch {
		case len(l.Line) > max:
			out = append(out, fmt.Sprintf("long(%d,%d)", l.Off, len(text)))
		case text != "":
			out = append(out, fmt.Sprintf("%s@%d", text, l.Off))
		}
	}
	return out
}

func TestLineReaderWhole(t *testing.T) {
	bom := "\uFEFF"
	tests := []struct {
		name string
		in   string
		want []lineAt
	}{
		{"empty", "", nil},
		{"one no newline", "a", []lineAt{{"a", 0}}},
		{"lf", "a\nbc\n", []lineAt{{"a", 0}, {"bc", 2}}},
		{"crlf", "a\r\nbc\r\n", []lineAt{{"a", 0}, {"bc", 3}}},
		{"cr", "a\rbc\r", []lineAt{{"a", 0}, {"bc", 2}}},
		{"mixed", "a\rb\r\nc\nd", []lineAt{{"a", 0}, {"b", 2}, {"c", 5}, {"d", 7}}},
		{"cr cr lf", "a\r\r\nb", []lineAt{{"a", 0}, {"b", 4}}},
		{"blank lines", "\n\na\n\r\n\rb\n\n", []lineAt{{"a", 2}, {"b", 7}}},
		{"only blanks", "\n\r\n\r", nil},
		{"bom", bom + "a\nb\n", []lineAt{{"a", 0}, {"b", 5}}},
		{"bom only", bom, nil},
		{"bom blank", bom + "\nx", []lineAt{{"x", 4}}},
		{"bom later kept", "a\n" + bom + "b", []lineAt{{"a", 0}, {bom + "b", 2}}},
		{"partial bom kept", "\xEF\xBBa", []lineAt{{"\xEF\xBBa", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in)), iotest.HalfReader(strings.NewReader(tt.in))} {
				got, _ := readSplit(t, r, 0, int64(len(tt.in)), nil)
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("%T: got %v, want %v", r, got, tt.want)
				}
			}
		})
	}
}

func TestLineReaderSplits(t *testing.T) {
	data := "ab\ncd\r\nef\rgh\n\nij"
	// offsets: ab 0, cd 3, ef 7, gh 10, blank 13, ij 14
	tests := []struct {
		start, end int64
		want       []lineAt
	}{
		{0, 0, []lineAt{{"ab", 0}}},
		{0, 2, []lineAt{{"ab", 0}}},
		{0, 3, []lineAt{{"ab", 0}, {"cd", 3}}}, // a line starting at end belongs here
		{1, 3, []lineAt{{"cd", 3}}},
		{3, 7, []lineAt{{"ef", 7}}}, // start on a line start skips that line
		{5, 6, nil},                 // inside "\r\n": next line starts at 7 > 6
		{6, 7, []lineAt{{"ef", 7}}}, // start on the '\n' of "\r\n"
		{7, 16, []lineAt{{"gh", 10}, {"ij", 14}}},
		{13, 16, []lineAt{{"ij", 14}}},
		{14, 16, nil},
		{15, 16, nil},
		{16, 20, nil},
	}
	for _, tt := range tests {
		got, _ := readSplit(t, strings.NewReader(data[tt.start:]), tt.start, tt.end, nil)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("[%d,%d): got %v, want %v", tt.start, tt.end, got, tt.want)
		}
	}
}

func TestLineReaderCounts(t *testing.T) {
	data := "a\n\nb\r\n\rc\n"
	got, lr := readSplit(t, strings.NewReader(data), 0, int64(len(data)), nil)
	if len(got) != 3 {
		t.Fatalf("lines %v", got)
	}
	if lr.Lines() != 5 {
		t.Errorf("Lines() = %d, want 5", lr.Lines())
	}
	if lr.BytesRead() != int64(len(data)) {
		t.Errorf("BytesRead() = %d, want %d", lr.BytesRead(), len(data))
	}

	// Lines() after each Next is the line number of the returned line.
	lr = newLineReader(strings.NewReader(data), 0, int64(len(data)), nil)
	var nums []int64
	for {
		_, _, err := lr.Next()
		if err != nil {
			break
		}
		nums = append(nums, lr.Lines())
	}
	if fmt.Sprint(nums) != "[1 3 5]" {
		t.Errorf("line numbers %v, want [1 3 5]", nums)
	}
}

func TestLineReaderMaxLine(t *testing.T) {
	opts := &lineOptions{MaxLineBytes: 4}
	for _, in := range []string{"abcd\nabcd\r\nabcd\rabcd", "abcd"} {
		got, _ := readSplit(t, iotest.OneByteReader(strings.NewReader(in)), 0, int64(len(in)), opts)
		if len(got) != strings.Count(in, "abcd") {
			t.Errorf("%q: got %v", in, got)
		}
	}
	// A longer line is skipped through its end and reported with its
	// offset, length and first bytes; reading goes on after it.
	for _, c := range []struct {
		in   string
		want string // lines, with long(offset,length,prefix) for a skipped one
		n    int64  // Lines() at the end
	}{
		{"ab\nabcde\n", "ab@0 long(3,5,abcd)", 2},
		{"ab\nabcde", "ab@0 long(3,5,abcd)", 2},
		{"ab\nabcde\r\n", "ab@0 long(3,5,abcd)", 2},
		{"ab\nabcdefghijklmnop", "ab@0 long(3,16,abcd)", 2},
		{"ab\nabcde\r\nxy\rz", "ab@0 long(3,5,abcd) xy@10 z@13", 4},
		{"abcdef\r\r\nabcde\n\nw", "long(0,6,abcd) long(9,5,abcd) w@16", 5},
		{"ab\nabc\xe2\x82\xac\n", "ab@0 long(3,6,abc)", 2}, // cut before the split rune
	} {
		for _, r := range []io.Reader{strings.NewReader(c.in), iotest.OneByteReader(strings.NewReader(c.in))} {
			got, lr := readLong(t, r, 0, int64(len(c.in)), opts)
			if got != c.want || lr.Lines() != c.n {
				t.Errorf("%q (%T): got %s, %d lines; want %s, %d", c.in, r, got, lr.Lines(), c.want, c.n)
			}
		}
	}
	// A byte order mark is not part of a long first line.
	for _, r := range []io.Reader{strings.NewReader("\uFEFFabcdef\nx"), iotest.OneByteReader(strings.NewReader("\uFEFFabcdef\nx"))} {
		lr := newLineReader(r, 0, 100, opts)
		_, off, err := lr.Next()
		long, ok := err.(*lineTooLongError)
		if !ok || off != 0 || long.Length != 6 || len(long.Prefix) == 0 || !strings.HasPrefix("abcdef", string(long.Prefix)) {
			t.Errorf("BOM and long line (%T): %v %+v", r, err, long)
		}
	}
	lr := newLineReader(strings.NewReader("ab\nabcde\n"), 0, 10, opts)
	lr.Next()
	if _, _, err := lr.Next(); err == nil || !strings.Contains(err.Error(), "offset 3") || !strings.Contains(err.Error(), "5 bytes long") ||
		!strings.Contains(err.Error(), "4 bytes") {
		t.Errorf("too-long error: %v", err)
	}
	// A read error while skipping a long line is returned, and sticks.
	boom := errors.New("boom")
	lr = newLineReader(&failReader{[]byte("ab\nabcdefgh"), boom}, 0, 100, opts)
	lr.Next()
	if _, _, err := lr.Next(); err != boom {
		t.Errorf("read error in a long line: %v", err)
	}
	if _, _, err := lr.Next(); err != boom {
		t.Errorf("read error not sticky: %v", err)
	}
	// The default grows the buffer past its initial size.
	long := strings.Repeat("x", 3*lineBufSize)
	in := "a\n" + long + "\r\nb"
	got, _ := readSplit(t, strings.NewReader(in), 0, int64(len(in)), nil)
	if len(got) != 3 || got[1].Line != long || got[2] != (lineAt{"b", int64(4 + len(long))}) {
		t.Errorf("long line not read intact")
	}
	// The skipped partial line of a split is not bound by the limit.
	got, _ = readSplit(t, strings.NewReader(in[3:]), 3, int64(len(in)), opts)
	if fmt.Sprint(got) != fmt.Sprint([]lineAt{{"b", int64(4 + len(long))}}) {
		t.Errorf("skip: got %v", got)
	}
}

type failReader struct {
	data []byte
	err  error
}

func (f *failReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestLineReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, in := range []string{"a\nbc", "a\nbc\r", ""} {
		lr := newLineReader(&failReader{[]byte(in), boom}, 0, 100, nil)
		var err error
		for err == nil {
			_, _, err = lr.Next()
		}
		if err != boom {
			t.Errorf("%q: got %v, want boom", in, err)
		}
	}
	// The error also surfaces while skipping the first partial line.
	lr := newLineReader(&failReader{[]byte("abc"), boom}, 5, 100, nil)
	if _, _, err := lr.Next(); err != boom {
		t.Errorf("skip: got %v, want boom", err)
	}
}

func TestCountLines(t *testing.T) {
	data := "a\n\nb\r\n\rc\rd\r"
	// line starts: 0, 2, 3, 6 (blank), 7, 9 ("d"); none at 11 (end of data).
	starts := []int64{0, 2, 3, 6, 7, 9}
	for before := int64(0); before <= int64(len(data))+2; before++ {
		var want int64
		for _, s := range starts {
			if s < before {
				want++
			}
		}
		for _, r := range []io.Reader{strings.NewReader(data), iotest.OneByteReader(strings.NewReader(data))} {
			got, err := countLines(r, before)
			if err != nil || got != want {
				t.Errorf("countLines(%d) = %d, %v; want %d", before, got, err, want)
			}
		}
	}
	if _, err := countLines(&failReader{[]byte("a\nb"), errors.New("boom")}, 10); err == nil {
		t.Error("read error not returned")
	}
}

// genContent makes random line-structured bytes from a seed.
func genContent(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var b bytes.Buffer
	if rng.IntN(3) == 0 {
		b.WriteString("\uFEFF")
	}
	n := rng.IntN(40)
	for range n {
		switch rng.IntN(6) {
		case 0: // blank
		default:
			for range 1 + rng.IntN(12) {
				b.WriteByte("abc,.1 \xEF\xBB\xBF"[rng.IntN(10)])
			}
		}
		b.WriteString([]string{"\n", "\r\n", "\r"}[rng.IntN(3)])
	}
	if rng.IntN(2) == 0 {
		b.WriteString("tail")
	}
	return b.Bytes()
}

// checkSplits reads data as splits of the given sizes and compares with the
// reference model and a whole-object read.
func checkSplits(t *testing.T, data []byte, sizes []int64, oneByte bool) {
	t.Helper()
	want := refNonBlank(data)
	whole, wlr := readSplit(t, bytes.NewReader(data), 0, int64(len(data)), nil)
	if fmt.Sprint(whole) != fmt.Sprint(want) {
		t.Fatalf("whole read of %q:\n got %v\nwant %v", data, whole, want)
	}
	if n := int64(len(refLines(data))); wlr.Lines() != n {
		t.Fatalf("whole Lines() = %d, want %d", wlr.Lines(), n)
	}
	var got []lineAt
	var lines int64
	start, k := int64(0), 0
	for start < int64(len(data)) || start == 0 {
		size := sizes[k%len(sizes)]
		k++
		end := start + size
		var r io.Reader = io.NewSectionReader(bytes.NewReader(data), start, int64(len(data))-start)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		part, lr := readSplit(t, r, start, end, nil)
		got = append(got, part...)
		lines += lr.Lines()
		start = end
		if len(data) == 0 {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("splits %v of %q:\n got %v\nwant %v", sizes, data, got, want)
	}
	if n := int64(len(refLines(data))); lines != n {
		t.Fatalf("splits' Lines() sum to %d, want %d", lines, n)
	}
	checkSplitsMax(t, data, sizes, oneByte)
	// countLines agrees with the model's line numbering.
	all := refLines(data)
	for i, l := range all {
		n, err := countLines(bytes.NewReader(data), l.Off)
		if err != nil || n != int64(i) {
			t.Fatalf("countLines(%d) = %d, %v; want %d", l.Off, n, err, i)
		}
	}
}

// checkSplitsMax reads data as splits of the given sizes with a small line
// limit and compares with the model: every line longer than the limit is
// reported once, by the split it belongs to, with its length, and every
// other line is read as without a limit.
func checkSplitsMax(t *testing.T, data []byte, sizes []int64, oneByte bool) {
	t.Helper()
	opts := &lineOptions{MaxLineBytes: 3 + int(sizes[0]%6)}
	want := refMax(data, opts.MaxLineBytes)
	var got []string
	var lines int64
	for start, k := int64(0), 0; start < int64(len(data)); k++ {
		end := start + sizes[k%len(sizes)]
		var r io.Reader = io.NewSectionReader(bytes.NewReader(data), start, int64(len(data))-start)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		part, lr := readLongLines(t, r, start, end, opts, false)
		got = append(got, part...)
		lines += lr.Lines()
		start = end
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("splits %v of %q, limit %d:\n got %v\nwant %v", sizes, data, opts.MaxLineBytes, got, want)
	}
	if n := int64(len(refLines(data))); lines != n && len(data) > 0 {
		t.Fatalf("limit %d: splits' Lines() sum to %d, want %d", opts.MaxLineBytes, lines, n)
	}
}

func TestLineReaderSplitsRandom(t *testing.T) {
	for seed := range uint64(300) {
		data := genContent(seed)
		rng := rand.New(rand.NewPCG(seed, 7))
		sizes := []int64{1 + rng.Int64N(20), 1 + rng.Int64N(5), 1 + rng.Int64N(50)}
		checkSplits(t, data, sizes, seed%2 == 0)
	}
}

func FuzzSplits(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\rd"), uint8(1), uint8(3), false)
	f.Add([]byte("\uFEFF\n\r\n\rx\r"), uint8(2), uint8(1), true)
	f.Add([]byte(""), uint8(1), uint8(1), false)
	f.Add([]byte("\r\n\r\n"), uint8(1), uint8(2), true)
	for seed := range uint64(20) {
		f.Add(genContent(seed), uint8(seed%7), uint8(seed%13), seed%2 == 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 uint8, oneByte bool) {
		checkSplits(t, data, []int64{int64(s1%64) + 1, int64(s2%64) + 1}, oneByte)
	})
}

func TestLineReaderAbalone(t *testing.T) {
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{1000, 4096, 65536} {
		checkSplits(t, data[:20000], []int64{size}, false)
	}
	got, lr := readSplit(t, bytes.NewReader(data), 0, int64(len(data)), nil)
	if len(got) != 4177 || lr.Lines() != 4177 {
		t.Errorf("abalone: %d lines, Lines() %d; want 4177", len(got), lr.Lines())
	}
}

func BenchmarkLineReader(b *testing.B) {
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		b.Fatal(err)
	}
	data = bytes.Repeat(data, 16)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		lr := newLineReader(bytes.NewReader(data), 0, int64(len(data)), nil)
		n := 0
		for {
			_, _, err := lr.Next()
			if err != nil {
				break
			}
			n++
		}
		if n != 16*4177 {
			b.Fatalf("%d lines", n)
		}
	}
}
