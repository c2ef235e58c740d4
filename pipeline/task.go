package pipeline

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// lineSlack bounds how far past its end a split reads to finish its last
// line: a longer line is an error anyway.
const maxLineBytes = 1 << 20

// counters are the live progress of one process, updated atomically by
// tasks and read by the progress reporter.
type counters struct {
	bytes atomic.Int64
	rows  atomic.Int64
}

// splitInput opens a split for reading and returns a line reader over it.
type splitInput struct {
	job   *Job
	split Split
	obj   Object
	rc    io.ReadCloser
	lr    *lineReader

	// line numbering: first returned line's offset and Lines() then
	firstSeen  bool
	firstOff   int64
	firstLines int64
	lineBase   int64 // lines before firstOff; -1 unknown
}

func openSplit(ctx context.Context, src Source, job *Job, s Split) (*splitInput, error) {
	obj := job.Objects[s.Object]
	in := &splitInput{job: job, split: s, obj: obj, lineBase: -1}
	end := s.Offset + s.Length
	if isCompressed(obj) {
		rc, err := src.NewRangeReader(ctx, obj.URL, obj.ETag, 0, -1)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bufio.NewReaderSize(rc, 256<<10))
		if err != nil {
			rc.Close()
			return nil, &ParseError{Object: obj.URL, Reason: "not a gzip stream: " + err.Error()}
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
	rc, err := src.NewRangeReader(ctx, obj.URL, obj.ETag, s.Offset, length)
	if err != nil {
		return nil, err
	}
	in.rc = rc
	in.lr = newLineReader(rc, s.Offset, end, &lineOptions{MaxLineBytes: maxLineBytes})
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
			return nil, 0, &ParseError{Object: in.obj.URL, Offset: tl.Offset,
				Reason: fmt.Sprintf("line longer than %d bytes", tl.Max)}
		}
		return nil, 0, err
	}
	if !in.firstSeen {
		in.firstSeen, in.firstOff, in.firstLines = true, off, in.lr.Lines()
	}
	return line, off, nil
}

// lineNumber returns the 1-based number of the line at off, which this
// split has just returned. When the split does not start the object, the
// lines before it are counted once, from the fit pass or by reading.
func (in *splitInput) lineNumber(ctx context.Context, src Source) int64 {
	if in.lineBase < 0 {
		switch {
		case in.split.Offset == 0 || isCompressed(in.obj):
			in.lineBase = 0
		case len(in.job.FirstLines) > in.split.Index && in.job.FirstLines[in.split.Index] > 0:
			// lines before the split's first line = FirstLines-1, plus
			// blank lines of this split before its first returned line,
			// which the reader counted.
			in.lineBase = in.job.FirstLines[in.split.Index] - 1 + (in.firstLines - 1)
		default:
			n, err := countLinesBefore(ctx, src, in.obj, in.firstOff)
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

// taskResult is what a worker reports for a finished task.
type taskResult struct {
	Stats     *features.Stats `json:"stats,omitempty"`
	Lines     int64           `json:"lines"`      // lines seen, blank included
	RowsIn    int64           `json:"rows_in"`    // valid rows
	Rejected  int64           `json:"rejected"`   // invalid rows (skip policy)
	RowsOut   []int64         `json:"rows_out"`   // per split output
	BytesRead int64           `json:"bytes_read"` // input bytes
}

// rowSink receives decoded batches.
type rowSink func(rec arrow.Record) error

// scan reads one split, decodes its lines and hands record batches to
// sink. Invalid rows stop the scan (PolicyError) or go to reject.
func scan(ctx context.Context, src Source, job *Job, s Split, mem memory.Allocator, fitOnly, oneBatch bool,
	sink rowSink, reject func(line []byte, pe *ParseError) error, c *counters) (taskResult, error) {
	var res taskResult
	in, err := openSplit(ctx, src, job, s)
	if err != nil {
		return res, err
	}
	defer in.close()
	dec := newDecoder(job.Spec, mem, &decodeOptions{FitOnly: fitOnly})
	defer dec.Release()

	flush := func() error {
		if dec.Len() == 0 {
			return nil
		}
		rec := dec.Flush()
		defer rec.Release()
		c.rows.Add(rec.NumRows())
		return sink(rec)
	}
	first := true
	var lastBytes int64
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		line, off, err := in.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				if n, cerr := countLinesBefore(ctx, src, in.obj, pe.Offset); cerr == nil && !isCompressed(in.obj) {
					pe.Line = n + 1
				}
			}
			return res, err
		}
		if b := in.lr.BytesRead(); b-lastBytes > 64<<10 {
			c.bytes.Add(b - lastBytes)
			lastBytes = b
		}
		headerRow := first && off == 0
		first = false
		if headerRow && job.Header {
			continue
		}
		if fe := dec.Add(line, off); fe != nil {
			pe := &ParseError{Object: in.obj.URL, Offset: off, Column: fe.Column, Value: fe.Value, Reason: fe.Reason}
			if headerRow && looksLikeHeader(job.Spec, line) {
				pe.Column, pe.Value = "", ""
				pe.Reason = "the first line looks like a header row; pass --header if the input has one"
			}
			pe.Line = in.lineNumber(ctx, src)
			if job.OnInvalid != PolicySkip || reject == nil {
				return res, pe
			}
			res.Rejected++
			if err := reject(line, pe); err != nil {
				return res, err
			}
			continue
		}
		res.RowsIn++
		if !oneBatch && dec.Len() >= job.BatchRows {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	res.Lines = in.lr.Lines()
	res.BytesRead = in.lr.BytesRead()
	c.bytes.Add(res.BytesRead - lastBytes)
	return res, nil
}

// rowError turns a features.RowError on rec into a ParseError.
func rowError(ctx context.Context, src Source, job *Job, s Split, rec arrow.Record, re *features.RowError) *ParseError {
	obj := job.Objects[s.Object]
	off := offsets(rec).Value(re.Row)
	pe := &ParseError{Object: obj.URL, Offset: off, Column: re.Column, Value: re.Value, Reason: re.Reason}
	if n, err := countLinesBefore(ctx, src, obj, off); err == nil {
		pe.Line = n + 1
	}
	return pe
}

func offsets(rec arrow.Record) *array.Int64 {
	idx := rec.Schema().FieldIndices(offsetColumn)
	return rec.Column(idx[0]).(*array.Int64)
}

// offsetColumn names the int64 column a decoder adds to every record: the
// byte offset of each row's line in its object.
const offsetColumn = "__offset"

// fitSplit runs the fit pass over one split.
func fitSplit(ctx context.Context, src Source, job *Job, s Split, mem memory.Allocator, c *counters) (taskResult, error) {
	st := features.NewStats(job.Spec)
	// With the skip policy every column is validated, so rows that the
	// transform pass will drop do not count towards the model.
	fitOnly := job.OnInvalid != PolicySkip
	res, err := scan(ctx, src, job, s, mem, fitOnly, false, func(rec arrow.Record) error {
		return st.Add(rec)
	}, func([]byte, *ParseError) error { return nil }, c)
	if err != nil {
		return res, err
	}
	res.Stats = st
	return res, nil
}

// transformSplit runs the transform pass over one split and writes its parts.
func transformSplit(ctx context.Context, src Source, sink Sink, job *Job, s Split, mem memory.Allocator, c *counters) (res taskResult, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var opened []*partWriter
	defer func() {
		cancel()
		if err != nil {
			// Closing after the cancel abandons each object, and does so
			// before this returns, so no staged data outlives the task.
			for _, w := range opened {
				w.abandon()
			}
		}
	}()

	model := job.Model
	names := splitNames(job.Spec)
	bounds := job.Spec.Bounds()
	outs := make([]*partWriter, len(names))
	for i, n := range names {
		w, err := newPartWriter(ctx, sink, PartKey(n, s.Index))
		if err != nil {
			return res, err
		}
		outs[i] = w
		opened = append(opened, w)
	}
	var rej *partWriter
	reject := func(line []byte, pe *ParseError) error {
		if rej == nil {
			w, err := newPartWriter(ctx, sink, PartKey(RejectedFolder, s.Index))
			if err != nil {
				return err
			}
			rej = w
			opened = append(opened, w)
			rej.buf = append(rej.buf, "object\tline\toffset\tcolumn\treason\ttext\n"...)
		}
		rej.buf = appendReject(rej.buf, pe, line)
		return rej.flushIfFull()
	}
	// adj collects rows that decoded but that the model rejects; scan's
	// counts are corrected by it at the end.
	var adj taskResult
	rowsOut := make([]int64, len(names))
	rows := make([][]int, len(names))
	obj := job.Objects[s.Object]
	drawer := newHashDrawer(job.Seed, obj.Name)

	// emit draws the rows of out (the transform of rec) into the outputs,
	// visiting them in order (nil: record order).
	emit := func(rec, out arrow.Record, order []int) error {
		for i := range rows {
			rows[i] = rows[i][:0]
		}
		switch job.SplitMode {
		case SplitSpark:
			rng := newXORShiftRandom(job.Seed + int64(s.Index))
			for _, r := range order {
				k := pick(bounds, rng.NextDouble())
				rows[k] = append(rows[k], r)
			}
		default:
			offs := offsets(rec)
			for r := range int(rec.NumRows()) {
				k := pick(bounds, drawer.Draw(offs.Value(r)))
				rows[k] = append(rows[k], r)
			}
		}
		for i, w := range outs {
			w.buf = features.AppendRows(w.buf, out, rows[i])
			rowsOut[i] += int64(len(rows[i]))
			if err := w.flushIfFull(); err != nil {
				return err
			}
		}
		return nil
	}

	// Hash mode: a batch is transformed once; a row the model rejects is
	// skipped and the rows around it are transformed on their own.
	var transform func(rec arrow.Record) error
	transform = func(rec arrow.Record) error {
		out, err := model.Transform(rec, mem)
		if err != nil {
			var re *features.RowError
			if !errors.As(err, &re) {
				return err
			}
			if err := skipRow(ctx, src, job, s, rec, re, reject, &adj); err != nil {
				return err
			}
			left, right := rec.NewSlice(0, int64(re.Row)), rec.NewSlice(int64(re.Row)+1, rec.NumRows())
			defer left.Release()
			defer right.Release()
			if err := transform(left); err != nil {
				return err
			}
			return transform(right)
		}
		defer out.Release()
		return emit(rec, out, nil)
	}
	sinkFn := transform
	oneBatch := job.SplitMode == SplitSpark
	if oneBatch {
		// Spark mode: the whole split is one batch; rejected rows leave
		// it before it is sorted and drawn, since every draw depends on
		// the rows before it.
		sinkFn = func(rec arrow.Record) error {
			rec.Retain()
			defer func() { rec.Release() }()
			for {
				out, err := model.Transform(rec, mem)
				if err == nil {
					defer out.Release()
					return emit(rec, out, sparkOrder(job.Spec, rec))
				}
				var re *features.RowError
				if !errors.As(err, &re) {
					return err
				}
				if err := skipRow(ctx, src, job, s, rec, re, reject, &adj); err != nil {
					return err
				}
				left, right := rec.NewSlice(0, int64(re.Row)), rec.NewSlice(int64(re.Row)+1, rec.NumRows())
				joined, err := concatRecords(mem, left, right)
				left.Release()
				right.Release()
				if err != nil {
					return err
				}
				rec.Release()
				rec = joined
			}
		}
	}
	res, err = scan(ctx, src, job, s, mem, false, oneBatch, sinkFn, reject, c)
	res.Rejected += adj.Rejected
	res.RowsIn += adj.RowsIn
	if err != nil {
		return res, err
	}
	res.RowsOut = rowsOut
	for _, w := range outs {
		if err := w.Close(); err != nil {
			return res, err
		}
	}
	if rej != nil {
		if err := rej.Close(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// skipRow handles a row the model cannot transform: with the skip policy
// it is counted and kept as rejected; otherwise it is the job's error.
func skipRow(ctx context.Context, src Source, job *Job, s Split, rec arrow.Record, re *features.RowError,
	reject func([]byte, *ParseError) error, res *taskResult) error {
	pe := rowError(ctx, src, job, s, rec, re)
	if job.OnInvalid != PolicySkip {
		return pe
	}
	res.Rejected++
	res.RowsIn--
	return reject(readLineAt(ctx, src, job.Objects[s.Object], pe.Offset, rec, re.Row), pe)
}

func concatRecords(mem memory.Allocator, recs ...arrow.Record) (arrow.Record, error) {
	schema := recs[0].Schema()
	cols := make([]arrow.Array, schema.NumFields())
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	for i := range cols {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		a, err := array.Concatenate(parts, mem)
		if err != nil {
			for _, c := range cols[:i] {
				c.Release()
			}
			return nil, err
		}
		cols[i] = a
	}
	rec := array.NewRecord(schema, cols, rows)
	for _, c := range cols {
		c.Release()
	}
	return rec, nil
}

// readLineAt returns the input line at off verbatim, read again from the
// source; if that fails, the decoded row rebuilt as CSV.
func readLineAt(ctx context.Context, src Source, obj Object, off int64, rec arrow.Record, row int) []byte {
	if !isCompressed(obj) {
		n := int64(maxLineBytes + 2)
		if off+n > obj.Size {
			n = obj.Size - off
		}
		if rc, err := src.NewRangeReader(ctx, obj.URL, obj.ETag, off, n); err == nil {
			defer rc.Close()
			lr := newLineReader(rc, 0, 0, &lineOptions{MaxLineBytes: maxLineBytes}) // read as if the line began an object
			if line, _, err := lr.Next(); err == nil {
				return append([]byte(nil), line...)
			}
		}
	}
	return []byte(rowText(rec, row))
}

// rowText rebuilds a decoded row as CSV text for the rejected-rows file.
func rowText(rec arrow.Record, row int) string {
	var b strings.Builder
	for i, f := range rec.Schema().Fields() {
		if f.Name == offsetColumn {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(rec.Column(i).ValueStr(row))
	}
	return b.String()
}

func pick(bounds []float64, d float64) int {
	for i, b := range bounds {
		if d < b {
			return i
		}
	}
	return len(bounds) - 1
}

func splitNames(spec *features.Spec) []string {
	names := make([]string, len(spec.Splits))
	for i, s := range spec.Splits {
		names[i] = s.Name
	}
	return names
}

// appendReject appends one rejected-row record: tab-separated object,
// line, offset, column and reason, then the line verbatim.
func appendReject(dst []byte, pe *ParseError, line []byte) []byte {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' || r == utf8.RuneError {
				return ' '
			}
			return r
		}, s)
	}
	reason := pe.Reason
	if pe.Value != "" {
		reason += fmt.Sprintf(": %q", pe.Value)
	}
	dst = fmt.Appendf(dst, "%s\t%d\t%d\t%s\t%s\t", clean(pe.Object), pe.Line, pe.Offset, clean(pe.Column), clean(reason))
	dst = append(dst, line...)
	return append(dst, '\n')
}

// partWriter buffers a part and streams it to the sink.
type partWriter struct {
	w      io.WriteCloser
	buf    []byte
	n      int64
	closed bool
}

const partBuffer = 1 << 20

func newPartWriter(ctx context.Context, sink Sink, key string) (*partWriter, error) {
	w, err := sink.NewWriter(ctx, key)
	if err != nil {
		return nil, err
	}
	return &partWriter{w: w, buf: make([]byte, 0, partBuffer+64<<10)}, nil
}

func (p *partWriter) flushIfFull() error {
	if len(p.buf) < partBuffer {
		return nil
	}
	return p.flush()
}

func (p *partWriter) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	n, err := p.w.Write(p.buf)
	p.n += int64(n)
	p.buf = p.buf[:0]
	return err
}

func (p *partWriter) Close() error {
	if err := p.flush(); err != nil {
		return err
	}
	p.closed = true
	return p.w.Close()
}

// abandon closes a writer whose context is already cancelled, which
// discards the object.
func (p *partWriter) abandon() {
	if !p.closed {
		p.closed = true
		p.w.Close()
	}
}
