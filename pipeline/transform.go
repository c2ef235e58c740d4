package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/format"
)

// transformTask is the transform pass over one split: it transforms the
// split's rows with the model, draws each into a split of the spec and
// writes one part per split folder (and one of rejected rows).
type transformTask struct {
	*splitTask
	sink   Sink
	stage  string // the stage id of the parts
	model  *features.Model
	bounds []float64
	drawer hashDrawer

	outs   []*partWriter // per split of the spec
	rej    *partWriter   // rejected rows, opened at the first
	opened []*partWriter // everything opened, to abandon on failure

	rows    [][]int // per split of the spec: rows of the batch drawn into it
	rowsOut []int64
	cols    *features.ColumnStats
	rejects rejectSummary
	// adj collects rows that decoded but that the model rejects; the
	// scan's counts are corrected by it at the end.
	adj   taskResult
	lines lineCursor // numbers the rows a spec's stages refuse
	// tally, in a speculative task, counts the labels of the rows
	// transformed; such a task stops at the first row the model
	// refuses or the decoder rejects (a mispredictError).
	tally *features.Tally
	// onReject, if set, takes the rejected rows instead of the part.
	onReject func(ctx context.Context, line []byte, pe *parseError) error
}

// runTransform runs the transform pass over the split and stages its
// parts in sink under stage; it returns what it staged. Nothing is staged
// when it fails. A speculative task also returns the label counts of its
// rows as the result's Stats, and fails with a *mispredictError at the
// first row that its model refuses or that is invalid.
func (t *splitTask) runTransform(ctx context.Context, sink Sink, stage string, speculative bool) (res taskResult, parts []stagedPart, err error) {
	t, release := t.recycling()
	defer release()
	ctx, cancel := context.WithCancel(ctx)
	names := splitNames(t.job.Spec)
	tt := &transformTask{splitTask: t, sink: sink, stage: stage, model: t.fit.model, bounds: t.job.Spec.Bounds(),
		drawer: newHashDrawer(t.job.Seed, t.object().Name),
		outs:   make([]*partWriter, len(names)), rows: make([][]int, len(names)), rowsOut: make([]int64, len(names)),
		cols: newColumnStats(t.job.Spec)}
	defer func() {
		cancel()
		if err != nil {
			// Closing after the cancel abandons each object, and does so
			// before this returns, so no staged data outlives the task.
			for _, w := range tt.opened {
				w.abandon()
			}
		}
	}()
	if speculative {
		if tt.tally, err = tt.model.NewTally(); err != nil {
			return res, nil, err
		}
	}
	for i, n := range names {
		if tt.outs[i], err = tt.open(ctx, n); err != nil {
			return res, nil, err
		}
	}
	o := scanOptions{decode: decodeOptions{Text: true}, batchRows: t.job.BatchRows, rows: tt.transformHash, reject: tt.reject}
	if t.job.SplitMode == SplitSpark {
		// One batch holds the whole split: its source text would add
		// the split's bytes to what the mode holds in memory, and the
		// page faults of that memory cost more than formatting the
		// numbers saves.
		o.decode.Text, o.batchRows, o.rows = false, 0, tt.transformSpark
		o.decode.Bytes = t.split.Length
	}
	if speculative {
		o.stop = func(pe *parseError) error { return tt.mispredicted(pe) }
	}
	// A speculative task counts its labels in the scan; the Spark mode's
	// runs run only for a split fitted in full (an object per split
	// leaves few splits to sample).
	if !speculative && t.job.SplitMode == SplitSpark && t.sparkRuns >= 0 && outputFormat(t.job.Spec) == features.FormatText {
		res, err = tt.sparkText(ctx)
	} else {
		res, err = t.scan(ctx, o)
	}
	res.Rejected += tt.adj.Rejected
	res.RowsIn += tt.adj.RowsIn
	if pe := (*parseError)(nil); speculative && errors.As(err, &pe) {
		err = tt.mispredicted(pe) // a header row that does not fit the spec
	}
	if err != nil {
		return res, nil, err
	}
	res.RowsOut, res.Columns = tt.rowsOut, tt.cols
	if speculative {
		res.Stats = tt.tally.Stats()
	}
	if res.Rejected > 0 {
		res.Rejects = &tt.rejects
	}
	if t.computed != nil {
		t.computed()
	}
	parts, err = tt.close(ctx, res.Rejected)
	return res, parts, err
}

// open starts the split's part in folder: in the job's output format for
// a split folder, else (rejected rows) as text.
func (t *transformTask) open(ctx context.Context, folder string) (*partWriter, error) {
	f := outputFormat(t.job.Spec)
	w, err := newPartWriter(ctx, t.sink, partKey(folder, t.split.Index, format.Extension(f)), t.stage)
	if err != nil {
		return nil, err
	}
	t.opened = append(t.opened, w)
	if folder != rejectedFolder && f != features.FormatText {
		if w.enc, err = newEncoder(f, w, t.model); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// close stages the parts and describes them; rejected is the number of
// rows in the part of rejected rows, if there is one.
func (t *transformTask) close(ctx context.Context, rejected int64) ([]stagedPart, error) {
	ws, rows := t.outs, t.rowsOut
	if t.rej != nil {
		ws, rows = append(ws[:len(ws):len(ws)], t.rej), append(rows[:len(rows):len(rows)], rejected)
	}
	var parts []stagedPart
	for i, w := range ws {
		p, err := w.close(rows[i])
		if err != nil {
			// What was staged already is of no use without the rest.
			for _, p := range parts {
				t.sink.Discard(context.WithoutCancel(ctx), p.Staged)
			}
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// reject keeps an invalid row in the split's part of rejected rows.
func (t *transformTask) reject(ctx context.Context, line []byte, pe *parseError) error {
	if t.onReject != nil {
		return t.onReject(ctx, line, pe)
	}
	if t.rej == nil {
		w, err := t.open(ctx, rejectedFolder)
		if err != nil {
			return err
		}
		t.rej = w
		t.rej.buf = append(t.rej.buf, "object\tline\toffset\tcolumn\treason\ttext\n"...)
	}
	t.rej.buf = appendReject(t.rej.buf, pe, line)
	t.rejects.add(t.split.Index, pe, line)
	return t.rej.flushIfFull()
}

// transformRec transforms rec with the model, counting its labels in a
// speculative task, which stops at a row the model refuses.
func (t *transformTask) transformRec(rec arrow.Record) (arrow.Record, error) {
	if t.tally == nil {
		return t.model.Transform(rec, t.mem)
	}
	out, err := t.model.TransformTally(rec, t.mem, t.tally)
	if err != nil {
		return nil, t.mispredicted(err)
	}
	return out, nil
}

// transformHash transforms a batch of the hash mode and draws its rows
// into the parts.
func (t *transformTask) transformHash(ctx context.Context, rec arrow.Record) error {
	return t.transformSkipping(ctx, rec, func(rec, out arrow.Record) error { return t.emit(rec, out, nil) }, nil)
}

// transformSkipping transforms rec with the model (counting its labels in
// a speculative task, which stops at the first row the model refuses) and
// passes the rows and their transform to keep. Rows the model drops leave
// first (dropBad); a row it rejects is skipped under the skip policy
// (skipRow) and the rows on either side go through on their own. fail, if
// set, takes the error of a dropped or rejected row before it is returned.
func (t *transformTask) transformSkipping(ctx context.Context, rec arrow.Record, keep func(rec, out arrow.Record) error, fail func(error) error) error {
	if fail == nil {
		fail = func(err error) error { return err }
	}
	out, err := t.transformRec(rec)
	if t.tally != nil && err != nil {
		return err
	}
	if bad := rowErrors(err); bad != nil {
		kept, derr := t.dropBad(ctx, rec, bad)
		if derr != nil {
			return fail(derr)
		}
		defer kept.Release()
		rec = kept
		out, err = t.model.Transform(kept, t.mem)
	}
	if err != nil {
		left, right, err := t.skipRow(ctx, rec, err)
		if err != nil {
			return fail(err)
		}
		defer left.Release()
		defer right.Release()
		if err := t.transformSkipping(ctx, left, keep, fail); err != nil {
			return err
		}
		return t.transformSkipping(ctx, right, keep, fail)
	}
	defer out.Release()
	return keep(rec, out)
}

// transformSpark transforms the split, one batch in the Spark mode;
// rejected rows leave it before it is sorted and drawn, since every draw
// depends on the rows before it.
func (t *transformTask) transformSpark(ctx context.Context, rec arrow.Record) error {
	rec.Retain()
	defer func() { rec.Release() }()
	for {
		out, err := t.transformRec(rec)
		if t.tally != nil && err != nil {
			return err
		}
		if err == nil {
			defer out.Release()
			return t.emit(rec, out, sparkOrder(t.job.Spec, rec))
		}
		if bad := rowErrors(err); bad != nil {
			kept, err := t.dropBad(ctx, rec, bad)
			if err != nil {
				return err
			}
			rec.Release()
			rec = kept
			continue
		}
		left, right, err := t.skipRow(ctx, rec, err)
		if err != nil {
			return err
		}
		joined, err := concatRecords(t.mem, left, right)
		left.Release()
		right.Release()
		if err != nil {
			return err
		}
		rec.Release()
		rec = joined
	}
}

// emit draws the rows of out (the transform of rec) into the outputs,
// visiting them in order (nil: record order).
func (t *transformTask) emit(rec, out arrow.Record, order []int) error {
	for i := range t.rows {
		t.rows[i] = t.rows[i][:0]
	}
	switch t.job.SplitMode {
	case SplitSpark:
		rng := newXORShiftRandom(t.job.Seed + int64(t.split.Index))
		for _, r := range order {
			k := pick(t.bounds, rng.NextDouble())
			t.rows[k] = append(t.rows[k], r)
		}
	default:
		offs := offsets(rec)
		for r := range int(rec.NumRows()) {
			k := pick(t.bounds, t.drawer.Draw(offs.Value(r)))
			t.rows[k] = append(t.rows[k], r)
		}
	}
	if err := t.addColumns(rec); err != nil {
		return err
	}
	var text *features.Text // the lines of out, for the text parts
	for i, w := range t.outs {
		if w.enc == nil && text == nil {
			text = features.TextOf(out)
		}
		// In chunks, so that the part's buffer stays near its size for a
		// batch of any length (the Spark mode's is the whole split).
		for rows := t.rows[i]; len(rows) > 0; {
			n := min(len(rows), emitChunk)
			if w.enc != nil {
				if err := w.enc.Encode(out, rows[:n]); err != nil {
					return err
				}
			} else {
				n = w.appendRows(text, rows[:n])
			}
			rows = rows[n:]
			if err := w.flushIfFull(); err != nil {
				return err
			}
		}
		t.rowsOut[i] += int64(len(t.rows[i]))
	}
	return nil
}

// emitChunk is how many rows emit writes before it checks its buffer.
const emitChunk = 4096

// skipRow handles err, an error of the model's Transform of rec. A row
// the model cannot transform is, with the skip policy, counted and kept as
// rejected, and the rows of rec before and after it are returned; without
// it, it is the job's error, as is any other error.
func (t *transformTask) skipRow(ctx context.Context, rec arrow.Record, err error) (left, right arrow.Record, _ error) {
	var re *features.RowError
	if !errors.As(err, &re) {
		return nil, nil, err
	}
	pe := t.rowError(ctx, rec, re)
	if t.job.OnInvalid != PolicySkip {
		return nil, nil, pe
	}
	t.adj.Rejected++
	t.adj.RowsIn--
	if err := t.reject(ctx, readLineAt(ctx, t.src, t.object(), pe.Offset, rec, re.Row), pe); err != nil {
		return nil, nil, err
	}
	return rec.NewSlice(0, int64(re.Row)), rec.NewSlice(int64(re.Row)+1, rec.NumRows()), nil
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

// appendReject appends one rejected-row record: tab-separated object,
// line, offset, column and reason, then the line verbatim.
func appendReject(dst []byte, pe *parseError, line []byte) []byte {
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

// partWriter buffers a part and streams it to a staged object of the sink.
// A text part's lines are appended to buf; a part of another format is
// encoded by enc, which writes to the partWriter.
type partWriter struct {
	w      StagedWriter
	key    string
	buf    []byte
	enc    rowEncoder
	n      int64
	closed bool
	// rowBytes is the most bytes per row of the text lines appended at
	// once so far.
	rowBytes int
}

// rowEncoder writes transformed rows in an output format other than text
// (*format.Encoder).
type rowEncoder interface {
	Encode(rec arrow.Record, rows []int) error
	// Close writes the end of the part.
	Close() error
}

// newEncoder starts a part of format f on w for the rows model
// transforms. Its memory is the garbage collector's, which takes back
// what an abandoned part held.
func newEncoder(f features.OutputFormat, w io.Writer, model *features.Model) (rowEncoder, error) {
	return format.NewEncoder(f, w, model.LabelColumn(), model.SlotNames(), nil)
}

// Write adds p to the part; an encoder writes through it. What does not
// fit in the buffer's room is written out rather than grow the buffer.
func (p *partWriter) Write(b []byte) (int, error) {
	if len(b) >= partBuffer || len(p.buf)+len(b) > cap(p.buf) {
		if err := p.flush(); err != nil {
			return 0, err
		}
		if len(b) >= partBuffer || len(b) > cap(p.buf) {
			// As large as the buffer: written as it is, after the buffer.
			n, err := p.w.Write(b)
			p.n += int64(n)
			return n, err
		}
	}
	p.buf = append(p.buf, b...)
	return len(b), p.flushIfFull()
}

// appendRows appends the text lines of some of rows, at least one, to the
// buffer and returns how many: as many as fit in its room at twice the
// widest line length per row seen so far, so that the buffer, which
// flushIfFull keeps below partBuffer, stays within its capacity (and goes
// back to partBufs) unless a single line outgrows the slack.
func (p *partWriter) appendRows(text *features.Text, rows []int) int {
	n := len(rows)
	if p.rowBytes > 0 {
		n = min(n, max(1, (cap(p.buf)-len(p.buf))/(2*p.rowBytes)))
	}
	before := len(p.buf)
	p.buf = text.AppendRows(p.buf, rows[:n])
	p.rowBytes = max(p.rowBytes, (len(p.buf)-before+n-1)/n)
	return n
}

// partBuffer is the size at which a part's buffer is written out; its
// capacity is partBufs' size, 64 KiB more.
const partBuffer = 1 << 20

func newPartWriter(ctx context.Context, sink Sink, key, stage string) (*partWriter, error) {
	w, err := sink.NewStagedWriter(ctx, key, stage)
	if err != nil {
		return nil, err
	}
	return &partWriter{w: w, key: key, buf: partBufs.get()}, nil
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

// close stages the part, which holds rows rows, and describes it.
func (p *partWriter) close(rows int64) (stagedPart, error) {
	if p.enc != nil {
		if err := p.enc.Close(); err != nil {
			return stagedPart{}, err
		}
	}
	err := p.flush()
	partBufs.put(p.buf)
	p.buf = nil
	if err != nil {
		return stagedPart{}, err
	}
	p.closed = true
	if err := p.w.Close(); err != nil {
		return stagedPart{}, err
	}
	return stagedPart{Key: p.key, Size: p.n, Rows: rows, Staged: p.w.Staged()}, nil
}

// abandon closes a writer whose context is already cancelled, which
// discards the object.
func (p *partWriter) abandon() {
	partBufs.put(p.buf)
	p.buf = nil
	if !p.closed {
		p.closed = true
		p.w.Close()
	}
}
