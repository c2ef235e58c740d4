package pipeline

import (
	"bufio"
	"compress/gzip"
	"context"
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

// maxLineBytes bounds the length of an input line. A split reads at most
// this far (and a terminator) past its end to finish its last line: a
// longer line is an error anyway.
const maxLineBytes = 1 << 20

// offsetColumn names the int64 column a decoder adds to every record: the
// byte offset of each row's line in its object.
const offsetColumn = "__offset"

// parseError reports an invalid input row and where it is.
type parseError struct {
	Object string // URL of the object
	Line   int64  // 1-based line number; 0 if unknown
	Offset int64  // byte offset of the line's first byte
	Column string // column name; empty for whole-line problems
	Value  string // the offending text, shortened for display
	Reason string
	Err    error // the decoder's or the model's finding, if any
}

func (e *parseError) Error() string {
	var b strings.Builder
	b.WriteString(e.Object)
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
	} else {
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
	Columns *features.ColumnStats `json:"columns,omitempty"`
	Rejects *Rejections           `json:"rejects,omitempty"`
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
}

func (t *splitTask) object() Object { return t.job.Objects[t.split.Object] }

// runFit runs the fit pass over the split.
func (t *splitTask) runFit(ctx context.Context) (taskResult, error) {
	st := features.NewStats(t.job.Spec)
	res, err := t.scan(ctx, scanOptions{
		// With the skip policy every column is validated, so rows that
		// the transform pass will drop do not count towards the model.
		decode:    decodeOptions{FitOnly: t.job.OnInvalid != PolicySkip},
		batchRows: t.job.BatchRows,
		rows:      func(_ context.Context, rec arrow.Record) error { return st.Add(rec) },
		reject:    func(context.Context, []byte, *parseError) error { return nil },
	})
	if err != nil {
		return res, err
	}
	res.Stats = st
	return res, nil
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
}

// scanner is the state of one scan.
type scanner struct {
	*splitTask
	scanOptions
	in        *splitInput
	dec       *decoder
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
	s := &scanner{splitTask: t, scanOptions: o, in: in, dec: newDecoder(t.job.Spec, t.mem, &o.decode)}
	defer s.dec.Release()
	err = s.run(ctx)
	return s.res, err
}

func (s *scanner) run(ctx context.Context) error {
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, off, err := s.in.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.readError(ctx, err)
		}
		if b := s.in.lr.BytesRead(); b-s.lastBytes > 64<<10 {
			s.ctr.bytes.Add(b - s.lastBytes)
			s.lastBytes = b
		}
		headerRow := first && off == 0
		first = false
		if headerRow && s.job.Header {
			continue
		}
		if fe := s.dec.Add(line, off); fe != nil {
			if err := s.invalid(ctx, line, off, fe, headerRow); err != nil {
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

// readError gives a parseError from reading the split its line number.
func (s *scanner) readError(ctx context.Context, err error) error {
	var pe *parseError
	if errors.As(err, &pe) {
		if n, cerr := countLinesBefore(ctx, s.src, s.in.obj, pe.Offset); cerr == nil && !isCompressed(s.in.obj) {
			pe.Line = n + 1
		}
	}
	return err
}

// invalid handles a line the decoder refused: the scan's error, or a
// rejected row under the skip policy.
func (s *scanner) invalid(ctx context.Context, line []byte, off int64, fe *fieldError, headerRow bool) error {
	pe := &parseError{Object: s.in.obj.URL, Offset: off, Column: fe.Column, Value: fe.Value, Reason: fe.Reason, Err: fe}
	if headerRow && looksLikeHeader(s.job.Spec, line) {
		pe.Column, pe.Value = "", ""
		pe.Reason = "the first line looks like a header row; pass --header if the input has one"
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
		rc, err := t.src.NewRangeReader(ctx, obj.URL, obj.ETag, 0, -1)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bufio.NewReaderSize(rc, 256<<10))
		if err != nil {
			rc.Close()
			return nil, &parseError{Object: obj.URL, Reason: "not a gzip stream: " + err.Error(), Err: err}
		}
		in.rc = struct {
			io.Reader
			io.Closer
		}{zr, rc}
		in.lr = newLineReader(in.rc, 0, 1<<62, &lineOptions{MaxLineBytes: maxLineBytes})
		return in, nil
	}
	length := s.Length + maxLineBytes + 2
	if s.Offset+length > obj.Size {
		length = obj.Size - s.Offset
	}
	rc, err := t.src.NewRangeReader(ctx, obj.URL, obj.ETag, s.Offset, length)
	if err != nil {
		return nil, err
	}
	in.rc = rc
	in.lr = newLineReader(rc, s.Offset, s.Offset+s.Length, &lineOptions{MaxLineBytes: maxLineBytes})
	return in, nil
}

func isCompressed(o Object) bool { return strings.HasSuffix(o.Name, ".gz") }

// next returns the next non-blank line; io.EOF at the end of the split.
func (in *splitInput) next() ([]byte, int64, error) {
	line, off, err := in.lr.Next()
	if err != nil {
		if err == io.EOF {
			return nil, 0, io.EOF
		}
		var tl *lineTooLongError
		if errors.As(err, &tl) {
			return nil, 0, &parseError{Object: in.obj.URL, Offset: tl.Offset,
				Reason: fmt.Sprintf("line longer than %d bytes", tl.Max), Err: tl}
		}
		return nil, 0, err
	}
	if !in.firstSeen {
		in.firstSeen, in.firstOff, in.firstLines = true, off, in.lr.Lines()
	}
	return line, off, nil
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
			// lines before the split's first line = first-1, plus blank
			// lines of this split before its first returned line, which
			// the reader counted.
			in.lineBase = first - 1 + (in.firstLines - 1)
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
	if n, err := countLinesBefore(ctx, t.src, obj, off); err == nil {
		pe.Line = n + 1
	}
	return pe
}

func offsets(rec arrow.Record) *array.Int64 {
	idx := rec.Schema().FieldIndices(offsetColumn)
	return rec.Column(idx[0]).(*array.Int64)
}
