package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"
)

// defaultMaxLineBytes is the longest line a lineReader accepts when
// lineOptions.MaxLineBytes is zero.
const defaultMaxLineBytes = 1 << 20

// lineBufSize is the initial buffer size of a lineReader; the buffer grows
// only to hold a line longer than it.
const lineBufSize = 64 << 10

// lineOptions tunes a lineReader. A nil *lineOptions means the defaults.
type lineOptions struct {
	// MaxLineBytes bounds the length of one line without its terminator
	// (default defaultMaxLineBytes). A longer line is skipped and reported
	// as a *lineTooLongError.
	MaxLineBytes int
}

// longLineKeep is how many bytes of a line longer than the limit a
// lineTooLongError keeps (no more than the limit) (cut back to a UTF-8 boundary when the text is
// UTF-8), to show it.
const longLineKeep = 1 << 10

// lineReader yields the lines of one byte-range split of an object, by
// Hadoop's rule: a line whose first byte is at offset p belongs to the split
// [start, end) when start < p <= end; the split at offset 0 also takes p = 0.
//
// A split not at offset 0 first skips through its first line terminator
// (even when start is itself a line start: that line belongs to the split
// before). Every split reads its last line past end to that line's
// terminator, so r must yield the object's bytes from start onwards, not only
// the split's own range: open it to the end of the object (or at least
// MaxLineBytes+2 bytes past end, then on to the end of a longer line that
// is read through) and close it when Next returns io.EOF.
//
// Terminators are "\n", "\r\n" and "\r"; a "\r\n" is one terminator even
// when it straddles a read or a split boundary. A UTF-8 byte order mark at
// offset 0 is dropped from the first line, whose offset stays 0. Blank lines
// (empty once the terminator is removed) are not returned but are counted by
// Lines. Bytes are not checked for valid UTF-8.
//
// A lineReader is not safe for concurrent use.
type lineReader struct {
	rd   io.Reader
	buf  []byte
	r, w int   // unread bytes are buf[r:w]
	pos  int64 // object offset of buf[r]

	start, end int64
	max        int

	rerr    error // error from rd; io.EOF once it is exhausted
	err     error // sticky error returned by Next
	started bool

	lines int64
	read  int64
}

// newLineReader returns a reader for the split [start, end) of an object; r
// must be positioned at byte start of the object. opts may be nil.
func newLineReader(r io.Reader, start, end int64, opts *lineOptions) *lineReader {
	maxLen := defaultMaxLineBytes
	if opts != nil && opts.MaxLineBytes > 0 {
		maxLen = opts.MaxLineBytes
	}
	size := lineBufSize
	if maxLen+2 < size {
		size = maxLen + 2
	}
	return &lineReader{rd: r, buf: make([]byte, size), pos: start, start: start, end: end, max: maxLen}
}

// Lines returns how many lines of this split have been read so far,
// including skipped blank lines and the line last returned by Next; the
// partial line skipped at the start of a split is not counted. It is the
// line number within the split of the line Next returned last.
func (lr *lineReader) Lines() int64 { return lr.lines }

// BytesRead returns how many bytes have been consumed from r so far.
func (lr *lineReader) BytesRead() int64 { return lr.read }

// Next returns the next non-blank line of the split without its terminator
// and the object offset of its first byte. The line is valid until the next
// call. At the end of the split it returns io.EOF; a read error of r is
// returned as is, and once Next has returned either it returns it again.
//
// A line longer than MaxLineBytes is not returned: Next reads through it to
// its terminator without holding more than MaxLineBytes of it, counts it
// in Lines, and returns a *lineTooLongError with its offset, its length
// and its first bytes; the next call goes on with the following line.
func (lr *lineReader) Next() (line []byte, offset int64, err error) {
	if lr.err != nil {
		return nil, 0, lr.err
	}
	if !lr.started {
		lr.started = true
		if lr.start > 0 {
			// No line of this split starts past end: the skip stops
			// there rather than read through a long line of the split
			// before.
			if _, err := lr.skipLine(lr.end); err != nil {
				lr.err = err
				return nil, 0, err
			}
		}
	}
	for {
		p := lr.pos
		if p > lr.end {
			lr.err = io.EOF
			return nil, 0, io.EOF
		}
		n, term, err := lr.findTerminator()
		if err == errLineTooLong {
			return nil, p, lr.skipLong(p)
		}
		if err != nil {
			lr.err = err
			return nil, 0, err
		}
		if n < 0 { // no bytes left: no line starts here
			lr.err = io.EOF
			return nil, 0, io.EOF
		}
		line = lr.buf[lr.r : lr.r+n]
		lr.r += n + term
		lr.pos += int64(n + term)
		lr.lines++
		if p == 0 && len(line) >= 3 && line[0] == 0xEF && line[1] == 0xBB && line[2] == 0xBF {
			line = line[3:]
		}
		if len(line) == 0 {
			continue
		}
		return line, p, nil
	}
}

// findTerminator locates the end of the line starting at buf[r], reading
// more input as needed. It returns the line length n (n < 0 when no byte is
// left) and the terminator length (0 at the end of the object).
func (lr *lineReader) findTerminator() (n, term int, err error) {
	scanned := 0 // buf[r:r+scanned] holds neither '\n' nor '\r'
	for {
		k, cr := lineBreak(lr.buf[lr.r+scanned : lr.w])
		if k >= 0 {
			n = scanned + k
			if n > lr.max {
				return 0, 0, errLineTooLong
			}
			if !cr {
				return n, 1, nil
			}
			// "\r" or "\r\n": look at the following byte.
			if lr.r+n+1 >= lr.w && lr.rerr == nil {
				lr.fill()
			}
			if lr.r+n+1 < lr.w && lr.buf[lr.r+n+1] == '\n' {
				return n, 2, nil
			}
			if lr.rerr != nil && lr.rerr != io.EOF && lr.r+n+1 >= lr.w {
				return 0, 0, lr.rerr
			}
			return n, 1, nil
		}
		scanned = lr.w - lr.r
		if scanned > lr.max {
			return 0, 0, errLineTooLong
		}
		if lr.rerr != nil {
			if lr.rerr != io.EOF {
				return 0, 0, lr.rerr
			}
			if scanned == 0 {
				return -1, 0, nil
			}
			return scanned, 0, nil
		}
		lr.fill()
	}
}

// lineBreak returns the index of the first '\n' or '\r' in seg (-1 if
// none) and whether it is a '\r'.
func lineBreak(seg []byte) (k int, cr bool) {
	i := bytes.IndexByte(seg, '\n')
	if i >= 0 {
		seg = seg[:i]
	}
	if j := bytes.IndexByte(seg, '\r'); j >= 0 {
		return j, true
	}
	return i, false
}

// errLineTooLong tells Next from findTerminator that the line at buf[r]
// is longer than the limit.
var errLineTooLong = errors.New("line too long")

// skipLong reads through the line at offset p, at buf[r], which is longer
// than the limit, and returns the lineTooLongError that describes it, or
// the read error that ends the input first (which sticks).
func (lr *lineReader) skipLong(p int64) error {
	keep := lr.buf[lr.r:lr.w]
	bom := p == 0 && bytes.HasPrefix(keep, utf8BOM) // not part of the line
	if bom {
		keep = keep[len(utf8BOM):]
	}
	keep = cutText(keep, min(longLineKeep, lr.max))
	e := &lineTooLongError{Offset: p, Max: lr.max, Prefix: append([]byte(nil), keep...)}
	term, err := lr.skipLine(math.MaxInt64)
	if err != nil {
		lr.err = err
		return err
	}
	lr.lines++
	e.Length = lr.pos - p - int64(term)
	if bom {
		e.Length -= int64(len(utf8BOM))
	}
	return e
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// cutText returns b cut to at most n bytes; when b is valid UTF-8 at the
// cut, the cut falls on a character boundary.
func cutText(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return b[:i]
		}
	}
	return b[:n]
}

// lineTooLongError reports a line longer than lineOptions.MaxLineBytes,
// which the lineReader has skipped.
type lineTooLongError struct {
	Offset int64 // the line's first byte
	Length int64 // the line's length without its terminator (and BOM)
	Max    int
	Prefix []byte // the line's first bytes (at most longLineKeep)
}

func (e *lineTooLongError) Error() string {
	return fmt.Sprintf("line at offset %d is %d bytes long, longer than the limit of %d bytes", e.Offset, e.Length, e.Max)
}

// skipLine discards input through the next line terminator, or to the end
// of the input, without buffering the skipped bytes, and returns the
// terminator's length (0 at the end of the input). It also stops, with
// term 0, once it has passed offset limit.
func (lr *lineReader) skipLine(limit int64) (term int, err error) {
	for {
		seg := lr.buf[lr.r:lr.w]
		k, cr := lineBreak(seg)
		if k >= 0 {
			lr.advance(k + 1)
			if !cr {
				return 1, nil
			}
			if lr.r >= lr.w && lr.rerr == nil {
				lr.fill()
			}
			if lr.r < lr.w && lr.buf[lr.r] == '\n' {
				lr.advance(1)
				return 2, nil
			}
			if lr.r >= lr.w && lr.rerr != nil && lr.rerr != io.EOF {
				return 0, lr.rerr
			}
			return 1, nil
		}
		lr.advance(len(seg))
		if lr.pos > limit {
			return 0, nil
		}
		if lr.rerr != nil {
			if lr.rerr == io.EOF {
				return 0, nil // no terminator: the line ends the input
			}
			return 0, lr.rerr
		}
		lr.fill()
	}
}

func (lr *lineReader) advance(n int) {
	lr.r += n
	lr.pos += int64(n)
}

// fill reads at least one more byte into the buffer, or records the read
// error in rerr. It moves the unread bytes to the front of the buffer and
// grows it when it is full.
func (lr *lineReader) fill() {
	if lr.r > 0 {
		lr.w = copy(lr.buf, lr.buf[lr.r:lr.w])
		lr.r = 0
	}
	if lr.w == len(lr.buf) {
		nb := make([]byte, 2*len(lr.buf))
		copy(nb, lr.buf[:lr.w])
		lr.buf = nb
	}
	for range 100 {
		n, err := lr.rd.Read(lr.buf[lr.w:])
		if n < 0 || n > len(lr.buf)-lr.w {
			lr.rerr = fmt.Errorf("line reader: invalid read count %d", n)
			return
		}
		lr.w += n
		lr.read += int64(n)
		if err != nil {
			lr.rerr = err
			return
		}
		if n > 0 {
			return
		}
	}
	lr.rerr = io.ErrNoProgress
}

// countLines returns how many lines begin before offset before in the
// object whose bytes r yields from offset 0, blank lines included. A line
// begins at offset 0 and after every terminator ("\n", "\r\n", "\r") that
// is followed by at least one byte, so the 1-based line number of the line at
// offset p is countLines(r, p) + 1. r is read up to offset before or to its
// end, whichever comes first; a read error other than io.EOF is returned.
func countLines(r io.Reader, before int64) (int64, error) {
	buf := make([]byte, 64<<10)
	var (
		count   int64
		off     int64
		prev    byte
		hasPrev bool
	)
	for off < before {
		want := int64(len(buf))
		if rem := before - off; rem < want {
			want = rem
		}
		n, err := io.ReadFull(r, buf[:want])
		if n > 0 {
			chunk := buf[:n]
			// Byte q starts a line when q == 0, or byte q-1 is '\n', or
			// byte q-1 is '\r' and byte q is not '\n'.
			if !hasPrev {
				count++
			} else if prev == '\n' || (prev == '\r' && chunk[0] != '\n') {
				count++
			}
			body := chunk[:n-1]
			count += int64(bytes.Count(body, []byte{'\n'}))
			for i := 0; ; i++ {
				j := bytes.IndexByte(body[i:], '\r')
				if j < 0 {
					break
				}
				i += j
				if chunk[i+1] != '\n' {
					count++
				}
			}
			prev, hasPrev = chunk[n-1], true
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return count, nil
		}
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}
