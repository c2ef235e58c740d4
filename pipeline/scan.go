package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// maxLineBytes bounds the length of an input line. A split reads this far
// (and a terminator) past its end in one range to finish its last line; a
// longer line is invalid, and the split reads on to its end only to skip
// it.
const maxLineBytes = 1 << 20

// offsetColumn names the int64 column a decoder adds to every record: the
// byte offset of each row's line in its object.
const offsetColumn = "__offset"

// parseError reports an invalid input row and where it is.
type parseError struct {
	Object string // URL of the object
	Line   int64  // 1-based line number; 0 if unknown
	Offset int64  // byte offset of the line's first byte; -1: the whole object
	Column string // column name; empty for whole-line problems
	Value  string // the offending text, shortened for display
	Reason string
	Err    error // the decoder's or the model's finding, if any
}

func (e *parseError) Error() string {
	var b strings.Builder
	b.WriteString(e.Object)
	switch {
	case e.Line > 0:
		fmt.Fprintf(&b, ": line %d", e.Line)
	case e.Offset >= 0:
		fmt.Fprintf(&b, ": line at byte %d", e.Offset)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %q", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Value != "" || e.Column != "" {
		fmt.Fprintf(&b, ": %q", e.Value)
	}
	return b.String()
}

func (e *parseError) Unwrap() error { return e.Err }

// isDataError reports whether err is one that a retry on another worker
// cannot mend: invalid input data, or storage refusing access.
func isDataError(err error) bool {
	var pe *parseError
	return errors.As(err, &pe) || errors.Is(err, fs.ErrPermission)
}

// counters are the live progress of one process, updated atomically by
// tasks and read by the progress reporter.
type counters struct {
	bytes atomic.Int64
	rows  atomic.Int64
}

// taskResult is what a worker reports for a finished task.
type taskResult struct {
	Stats     *features.Stats `json:"stats,omitempty"`
	Lines     int64           `json:"lines"`      // lines seen, blank included
	RowsIn    int64           `json:"rows_in"`    // valid rows
	Rejected  int64           `json:"rejected"`   // invalid rows (skip policy)
	RowsOut   []int64         `json:"rows_out"`   // per split output
	BytesRead int64           `json:"bytes_read"` // input bytes
	// Columns and Rejects describe a transform task's rows (record.go).
	// Between processes the column stats travel in their binary form
	// (MarshalJSON): about a fifth of the bytes of their JSON and of the
	// time to read them, for a coordinator that reads a report of every
	// task.
	Columns *features.ColumnStats `json:"-"`
	Rejects *rejectSummary        `json:"rejects,omitempty"`
}

// taskResultJSON is taskResult as sent: its column stats in their
// binary form (base64 in JSON).
type taskResultJSON struct {
	plainTaskResult
	Columns []byte `json:"columns,omitempty"`
}

type plainTaskResult taskResult

func (r taskResult) MarshalJSON() ([]byte, error) {
	w := taskResultJSON{plainTaskResult: plainTaskResult(r)}
	if r.Columns != nil {
		b, err := r.Columns.MarshalBinary()
		if err != nil {
			return nil, err
		}
		w.Columns = b
	}
	return json.Marshal(w)
}

func (r *taskResult) UnmarshalJSON(data []byte) error {
	var w taskResultJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*r = taskResult(w.plainTaskResult)
	if w.Columns != nil {
		r.Columns = new(features.ColumnStats)
		if err := r.Columns.UnmarshalBinary(w.Columns); err != nil {
			return err
		}
	}
	return nil
}

// splitTask is a task over one split of a job, with what it reads from
// and counts in.
type splitTask struct {
	job   *Job
	fit   *fitResult // nil in the fit phase
	split Split
	src   Source
	mem   memory.Allocator
	ctr   *counters
	// computed, if set, is called once the task has done its computing
	// and only writes out what it made.
	computed func()
	// recyclers, if set, lends the task a recycler of an earlier task's
	// buffers (recycling).
	recyclers *recyclers
	// sparkRuns is how many runs the Spark mode reads a text split in
	// (0: by its size and the cores; below 0: as one batch, as it reads
	// the splits of other formats).
	sparkRuns int
}

func (t *splitTask) object() Object { return t.job.Objects[t.split.Object] }

// runFit runs the fit pass over the split; with validate, every column
// of its rows is validated as the transform pass does.
func (t *splitTask) runFit(ctx context.Context, validate bool) (taskResult, error) {
	if t.job.SplitMode == SplitSpark && t.sparkRunCount() > 1 {
		return t.fitRuns(ctx, validate)
	}
	t, release := t.recycling()
	defer release()
	st := t.fitStats()
	fitOnly := t.job.OnInvalid != PolicySkip && !validate
	decode := decodeOptions{FitOnly: fitOnly}
	if fitOnly {
		decode.Columns = st.DecodeColumns()
	}
	res, err := t.scan(ctx, scanOptions{
		// With the skip policy every column is validated, so rows that
		// the transform pass will drop do not count towards the model.
		decode:    decode,
		batchRows: t.job.BatchRows,
		rows:      func(ctx context.Context, rec arrow.Record) error { return t.fitRows(ctx, st, rec) },
		reject:    func(context.Context, []byte, *parseError) error { return nil },
	})
	if pe := (*parseError)(nil); fitOnly && errors.As(err, &pe) {
		err = t.firstInvalid(ctx, err)
	}
	if err != nil {
		return res, err
	}
	res.Stats = st
	return res, nil
}

// firstInvalid returns the error of the first invalid row of the split,
// err being that of a row that the fit pass, which parses only the
// categorical columns, found invalid: an earlier row may have a bad
// number, which only the transform pass would find. It validates the
// split's rows as the transform pass does, up to the first invalid one.
func (t *splitTask) firstInvalid(ctx context.Context, err error) error {
	_, full := t.scan(ctx, scanOptions{
		batchRows: t.job.BatchRows,
		rows:      func(context.Context, arrow.Record) error { return nil },
	})
	if pe := (*parseError)(nil); errors.As(full, &pe) {
		return full
	}
	return err
}

// scanOptions say how a scan decodes and where its rows go.
type scanOptions struct {
	decode    decodeOptions
	batchRows int // rows per batch; 0: the whole split is one batch
	// rows receives each decoded batch, which it must not keep.
	rows func(ctx context.Context, rec arrow.Record) error
	// reject receives each invalid row under the skip policy; nil means
	// every invalid row is an error.
	reject func(ctx context.Context, line []byte, pe *parseError) error
	// stop, if set, is called with each invalid row, before it is
	// numbered, under either policy; its error ends the scan.
	stop func(pe *parseError) error
}

// scanner is the state of one scan.
type scanner struct {
	*splitTask
	scanOptions
	in        *splitInput
	dec       rowDecoder
	res       taskResult
	lastBytes int64 // bytes read already added to the counters
}

// scan reads the split, decodes its lines and hands record batches to
// o.rows. Invalid rows stop the scan (PolicyError) or go to o.reject.
func (t *splitTask) scan(ctx context.Context, o scanOptions) (taskResult, error) {
	in, err := t.openInput(ctx)
	if err != nil {
		return taskResult{}, err
	}
	defer in.close()
	if o.decode.Rows == 0 {
		o.decode.Rows = o.batchRows
	}
	s := &scanner{splitTask: t, scanOptions: o, in: in, dec: newRowDecoder(t.job.Spec, t.mem, &o.decode)}
	defer s.dec.Release()
	err = s.run(ctx)
	return s.res, err
}

func (s *scanner) run(ctx context.Context) error {
	first := true
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if b := s.in.lr.BytesRead(); b-s.lastBytes > 64<<10 {
				s.ctr.bytes.Add(b - s.lastBytes)
				s.lastBytes = b
			}
		}
		line, off, err := s.in.next()
		if err == io.EOF {
			break
		}
		long, _ := err.(*lineTooLongError)
		if err != nil && long == nil {
			return err
		}
		if first {
			first = false
			if header, err := s.isHeader(ctx, off); err != nil || header {
				if err == nil {
					err = s.checkHeader(ctx, line, off, long)
				}
				if err != nil {
					return err
				}
				continue
			}
		}
		if long != nil {
			if err := s.tooLong(ctx, long); err != nil {
				return err
			}
			continue
		}
		if fe := s.dec.Add(line, off); fe != nil {
			if err := s.invalid(ctx, line, off, fe); err != nil {
				return err
			}
			continue
		}
		s.res.RowsIn++
		if s.batchRows > 0 && s.dec.Len() >= s.batchRows {
			if err := s.flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := s.flush(ctx); err != nil {
		return err
	}
	s.res.Lines = s.in.lr.Lines()
	s.res.BytesRead = s.in.lr.BytesRead()
	s.ctr.bytes.Add(s.res.BytesRead - s.lastBytes)
	return nil
}

// flush hands the rows decoded so far to the rows option.
func (s *scanner) flush(ctx context.Context) error {
	if s.dec.Len() == 0 {
		return nil
	}
	rec := s.dec.Flush()
	defer rec.Release()
	s.ctr.rows.Add(rec.NumRows())
	return s.rows(ctx, rec)
}

// isHeader reports whether the line at off, the first line the split
// returned, is a header row to skip: with the Header setting, the first
// non-blank line of each object is.
func (s *scanner) isHeader(ctx context.Context, off int64) (bool, error) {
	if !s.job.Header {
		return false, nil
	}
	return s.in.startsObject(ctx, off)
}

// checkHeader refuses a header row (line at off; long if it was too long
// to read) whose names are not the spec's columns in the spec's order
// (compared without case): the columns would be read under the wrong
// names. It is an error under either policy.
func (s *scanner) checkHeader(ctx context.Context, line []byte, off int64, long *lineTooLongError) error {
	if long == nil && looksLikeHeader(s.job.Spec, line) {
		return nil
	}
	names := make([]string, len(s.job.Spec.Columns))
	for i, c := range s.job.Spec.Columns {
		names[i] = c.Name
	}
	got := string(line)
	if long != nil {
		got = fmt.Sprintf("a line of %d bytes", long.Length)
	} else if len(got) > 200 {
		got = got[:200] + "..."
	}
	return &parseError{Object: s.in.obj.URL, Offset: off, Line: s.in.lineNumber(ctx),
		Reason: fmt.Sprintf("the header row names the columns %s, but the spec's columns are %s, in that order: "+
			"reorder the spec's columns to match the file (or leave out --header if the file has none)", strings.TrimSpace(got), strings.Join(names, ","))}
}

// invalid handles a line the decoder refused: the scan's error, or a
// rejected row under the skip policy.
func (s *scanner) invalid(ctx context.Context, line []byte, off int64, fe *fieldError) error {
	pe := &parseError{Object: s.in.obj.URL, Offset: off, Column: fe.Column, Value: fe.Value, Reason: fe.Reason, Err: fe}
	if !s.job.Header && off == s.in.firstOff && looksLikeHeader(s.job.Spec, line) {
		if first, err := s.in.startsObject(ctx, off); err == nil && first {
			pe.Column, pe.Value = "", ""
			pe.Reason = "the first line looks like a header row; pass --header if the input has one"
		}
	}
	return s.refuse(ctx, line, pe)
}

// tooLong handles a line longer than maxLineBytes, which the line reader
// has skipped: the scan's error, or a rejected row, of which the rejected
// rows keep the first bytes, under the skip policy.
func (s *scanner) tooLong(ctx context.Context, e *lineTooLongError) error {
	pe := &parseError{Object: s.in.obj.URL, Offset: e.Offset, Err: e,
		Reason: fmt.Sprintf("the line is %d bytes long, longer than the limit of %d bytes", e.Length, e.Max)}
	if s.job.OnInvalid == PolicySkip {
		pe.Reason += fmt.Sprintf("; its text here is cut to its first %d bytes", len(e.Prefix))
	}
	return s.refuse(ctx, e.Prefix, pe)
}

// refuse numbers the line of pe, an invalid row, and returns pe, or under
// the skip policy counts the row and hands it to the reject option.
func (s *scanner) refuse(ctx context.Context, line []byte, pe *parseError) error {
	if s.stop != nil {
		return s.stop(pe)
	}
	pe.Line = s.in.lineNumber(ctx)
	if s.job.OnInvalid != PolicySkip || s.reject == nil {
		return pe
	}
	s.res.Rejected++
	return s.reject(ctx, line, pe)
}

// splitInput reads the lines of a split.
type splitInput struct {
	t   *splitTask
	obj Object
	rc  io.ReadCloser
	lr  *lineReader

	// line numbering: first returned line's offset and Lines() then
	firstSeen  bool
	firstOff   int64
	firstLines int64
	lineBase   int64 // lines before firstOff; -1 unknown
}

func (t *splitTask) openInput(ctx context.Context) (*splitInput, error) {
	s := t.split
	obj := t.object()
	in := &splitInput{t: t, obj: obj, lineBase: -1}
	if isCompressed(obj) {
		if err := in.openGzip(ctx); err != nil {
			return nil, err
		}
		return in, nil
	}
	length := min(s.Length+maxLineBytes+2, obj.Size-s.Offset)
	rc, err := t.src.NewRangeReader(ctx, obj.URL, obj.ETag, s.Offset, length)
	if err != nil {
		return nil, err
	}
	in.rc = &rangeChain{rc: rc, off: s.Offset, size: obj.Size, more: func(off int64) (io.ReadCloser, error) {
		return t.src.NewRangeReader(ctx, obj.URL, obj.ETag, off, -1)
	}}
	in.lr = newLineReader(in.rc, s.Offset, s.Offset+s.Length, &lineOptions{MaxLineBytes: maxLineBytes})
	return in, nil
}

// openGzip opens the split of a gzip object: the whole object,
// decompressed.
func (in *splitInput) openGzip(ctx context.Context) error {
	rc, err := in.t.src.NewRangeReader(ctx, in.obj.URL, in.obj.ETag, 0, -1)
	if err != nil {
		return err
	}
	src := &sourceReader{r: rc}
	zr, err := gzip.NewReader(bufio.NewReaderSize(src, 256<<10))
	if err != nil {
		rc.Close()
		return gzipError(in.obj.URL, src, err, 0)
	}
	in.rc = struct {
		io.Reader
		io.Closer
	}{&gzipReader{zr: zr, src: src, url: in.obj.URL}, rc}
	in.lr = newLineReader(in.rc, 0, 1<<62, &lineOptions{MaxLineBytes: maxLineBytes})
	return nil
}

func isCompressed(o Object) bool { return strings.HasSuffix(o.Name, ".gz") }

// rangeChain reads an object from an offset on: through rc, a range that
// may end before the object does, then, only if read past that range's
// end, through a second range to the end of the object, which more opens.
type rangeChain struct {
	rc   io.ReadCloser
	off  int64 // object offset of the next byte
	size int64 // the object's size
	more func(off int64) (io.ReadCloser, error)
	err  error // more's error, returned from then on
}

func (c *rangeChain) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.rc.Read(p)
	c.off += int64(n)
	if err == io.EOF && c.off < c.size && c.more != nil {
		c.rc.Close()
		c.rc, c.err = c.more(c.off)
		c.more = nil
		if c.err != nil {
			c.rc = nil
			return n, c.err
		}
		err = nil
	}
	return n, err
}

func (c *rangeChain) Close() error {
	if c.rc == nil {
		return nil
	}
	return c.rc.Close()
}

// sourceReader remembers the first error of r other than io.EOF, to tell
// a failed read of the object from a broken stream in its bytes.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// gzipReader decompresses a gzip object; an error of the stream itself
// (truncated, corrupt) is a parseError naming the object.
type gzipReader struct {
	zr  *gzip.Reader
	src *sourceReader
	url string
	n   int64 // decompressed bytes returned
}

func (g *gzipReader) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	g.n += int64(n)
	if err != nil && err != io.EOF {
		err = gzipError(g.url, g.src, err, g.n)
	}
	return n, err
}

// gzipError returns err, met after n decompressed bytes of the gzip
// object at url: the source's own read error as it is (another attempt
// may read the object), otherwise a parseError for the whole object,
// since its bytes are not a complete gzip stream and no retry mends that.
func gzipError(url string, src *sourceReader, err error, n int64) error {
	if src.err != nil {
		return src.err
	}
	reason := fmt.Sprintf("the gzip stream is truncated or corrupt: %v (after %d bytes decompressed); check the object with gzip -t", err, n)
	if n == 0 && errors.Is(err, gzip.ErrHeader) {
		reason = fmt.Sprintf("not a gzip stream (%v), though its name ends in .gz", err)
	}
	return &parseError{Object: url, Offset: -1, Reason: reason, Err: err}
}

// next returns the next non-blank line; io.EOF at the end of the split; a
// *lineTooLongError (with the line's offset) for a line skipped as too
// long.
func (in *splitInput) next() ([]byte, int64, error) {
	line, off, err := in.lr.Next()
	if err != nil {
		long, ok := err.(*lineTooLongError)
		if !ok {
			return nil, 0, err
		}
		off = long.Offset
	}
	if !in.firstSeen {
		in.firstSeen, in.firstOff, in.firstLines = true, off, in.lr.Lines()
	}
	return line, off, err
}

// startsObject reports whether the line at off, the first line this split
// returned, is its object's first non-blank line: whether only line
// terminators (and a byte order mark at offset 0) come before it. Only a
// split not at offset 0 reads the object to know, from its start, and
// stops at the first other byte.
func (in *splitInput) startsObject(ctx context.Context, off int64) (bool, error) {
	if off == 0 || in.t.split.Offset == 0 || isCompressed(in.obj) {
		return true, nil
	}
	const head = 4 << 10 // one small read settles it for most objects
	for from := int64(0); from < off; {
		n := off - from
		if from == 0 {
			n = min(n, head)
		}
		rc, err := in.t.src.NewRangeReader(ctx, in.obj.URL, in.obj.ETag, from, n)
		if err != nil {
			return false, err
		}
		blank, err := onlyTerminators(rc, from == 0)
		rc.Close()
		if err != nil || !blank {
			return false, err
		}
		from += n
	}
	return true, nil
}

// onlyTerminators reports whether r yields nothing but '\r' and '\n' (after
// a byte order mark, when bom is set).
func onlyTerminators(r io.Reader, bom bool) (bool, error) {
	buf := make([]byte, 4<<10)
	for {
		n, err := io.ReadFull(r, buf)
		b := buf[:n]
		if bom {
			b, bom = bytes.TrimPrefix(b, utf8BOM), false
		}
		if len(bytes.Trim(b, "\r\n")) > 0 {
			return false, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// lineNumber returns the 1-based number of the line this split has just
// returned. When the split does not start the object, the lines before it
// are counted once, from the fit pass or by reading.
func (in *splitInput) lineNumber(ctx context.Context) int64 {
	if in.lineBase < 0 {
		first := in.t.fit.firstLine(in.t.split.Index)
		switch {
		case in.t.split.Offset == 0 || isCompressed(in.obj):
			in.lineBase = 0
		case first > 0:
			// first numbers the split's first line, blank or not, as
			// lr.Lines() counts from it.
			in.lineBase = first - 1
		default:
			n, err := countLinesBefore(ctx, in.t.src, in.obj, in.firstOff)
			if err != nil {
				return 0
			}
			in.lineBase = n - (in.firstLines - 1)
		}
	}
	return in.lineBase + in.lr.Lines()
}

func countLinesBefore(ctx context.Context, src Source, obj Object, off int64) (int64, error) {
	if off == 0 {
		return 0, nil
	}
	rc, err := src.NewRangeReader(ctx, obj.URL, obj.ETag, 0, off)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return countLines(rc, off)
}

func (in *splitInput) close() { in.rc.Close() }

// rowError turns a features.RowError on rec, a batch of the split, into
// a parseError.
func (t *splitTask) rowError(ctx context.Context, rec arrow.Record, re *features.RowError) *parseError {
	obj := t.object()
	off := offsets(rec).Value(re.Row)
	pe := &parseError{Object: obj.URL, Offset: off, Column: re.Column, Value: re.Value, Reason: re.Reason, Err: re}
	if re.Stage != "" {
		pe.Reason = re.Stage + ": " + re.Reason
	}
	if n, err := countLinesBefore(ctx, t.src, obj, off); err == nil {
		pe.Line = n + 1
	}
	return pe
}

func offsets(rec arrow.Record) *array.Int64 {
	idx := rec.Schema().FieldIndices(offsetColumn)
	return rec.Column(idx[0]).(*array.Int64)
}
