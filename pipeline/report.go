package pipeline

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shardprep/shardprep/features"
)

// The job report: one self-contained HTML page (inline CSS and SVG, no
// script, nothing fetched) drawn from a manifest. Everything that grows
// with the job is aggregated to a bounded number of shapes: the timeline
// draws at most maxBars attempts one by one (and every attempt that did
// not finish well), else busy time per worker in timeBuckets; the split
// balance and the columns are histograms; so the page stays small for any
// number of splits.

//go:embed report.html.tmpl
var reportTemplate string

// reportTmpl parses the template at its first use.
var reportTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"num": func(n int64) string { return groupDigits(n) },
		"f":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
		"g":   func(v *float64) string { return gnum(v) },
		"pct": func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) },
	}).Parse(reportTemplate))
})

// Bounds of the report's shapes.
const (
	maxBars       = 2000
	timeBuckets   = 120
	balanceBins   = 20
	columnBins    = 30
	maxLabelBars  = 30
	reportWidth   = 960.0
	laneHeight    = 22.0
	chartHeight   = 120.0
	chartLeft     = 120.0
	histWidth     = 300.0
	histHeight    = 60.0
	rejectedShown = maxRejectedLines
)

// WriteReport writes the report of c's job as far as it got (see
// Manifest). failure, if not empty, says why the job failed: the report
// then shows how far it got.
func (c *Coordinator) WriteReport(w io.Writer, failure string) error {
	return writeReport(w, c.Manifest(), failure)
}

// writeReport writes the report of the job m describes.
func writeReport(w io.Writer, m *Manifest, failure string) error {
	return reportTmpl().Execute(w, newReportView(m, failure))
}

// renderReport returns the report of a committing job, or nil in a
// build without column statistics.
func renderReport(m *Manifest) ([]byte, error) {
	if !columnStats {
		return nil, nil
	}
	var b bytes.Buffer
	if err := writeReport(&b, m, ""); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return b.Bytes(), nil
}

type reportView struct {
	M        *Manifest
	Failure  string
	Glance   []kv
	Phases   []phaseBar
	Timeline timelineView
	Through  []lineChart
	Balance  []histView
	Cats     []catView
	Nums     []numView
	Label    labelView
	Rejected *rejectSummary
}

type kv struct{ K, V string }

func newReportView(m *Manifest, failure string) *reportView {
	v := &reportView{M: m, Failure: failure, Glance: glance(m), Phases: phaseBars(m),
		Timeline: timeline(m), Through: throughput(m), Balance: balance(m), Rejected: &m.Rejections}
	if m.Model != nil {
		v.Cats = categoricals(m.Model)
	}
	if m.Columns != nil {
		for _, c := range m.Columns.Numeric() {
			v.Nums = append(v.Nums, numView{S: c, Hist: columnHist(c, c.Min, c.Max, "")})
		}
		v.Label = labels(m.Columns)
	}
	return v
}

// glance is the job at a glance.
func glance(m *Manifest) []kv {
	rows := m.Totals.RowsIn + m.Totals.Rejected
	secs := float64(m.Timings.TotalMS) / 1000
	out := []kv{
		{"inputs", fmt.Sprintf("%s objects, %s bytes", groupDigits(int64(len(m.Inputs))), groupDigits(m.Totals.BytesIn))},
		{"output", m.Output + " (" + string(outputFormatOf(m)) + ")"},
		{"job", m.Job + " (run " + m.RunID + ")"},
		{"seed", fmt.Sprintf("%d (%s split, on invalid rows: %s)", m.Seed, m.SplitMode, m.OnInvalid)},
		{"rows in", groupDigits(rows)},
	}
	for _, name := range splitNamesOf(m) {
		n := m.Totals.RowsOut[name]
		out = append(out, kv{name, fmt.Sprintf("%s (%s)", groupDigits(n), share(n, m.Totals.RowsIn))})
	}
	out = append(out, kv{"rejected", fmt.Sprintf("%s (%s)", groupDigits(m.Totals.Rejected), share(m.Totals.Rejected, rows))})
	mbps := "-"
	if secs > 0 {
		mbps = fmt.Sprintf("%.1f MB/s, %s rows/s", float64(m.Totals.BytesIn)/1e6/secs, groupDigits(int64(float64(rows)/secs)))
	}
	out = append(out,
		kv{"wall time", fmt.Sprintf("%.2f s", secs)},
		kv{"throughput", mbps},
		kv{"splits", fmt.Sprintf("%s (split size %s bytes), %d workers, %d reassigned",
			groupDigits(int64(len(m.Parts))), groupDigits(m.SplitSize), len(m.Workers), len(m.Reassigned))},
		kv{"grant calls", groupDigits(m.GrantCalls)},
		kv{"started", m.Started.UTC().Format(time.RFC3339)},
	)
	return out
}

func share(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

// outputFormatOf is the output format of m's job.
func outputFormatOf(m *Manifest) features.OutputFormat {
	if m.Spec == nil {
		return features.FormatText
	}
	return outputFormat(m.Spec)
}

func splitNamesOf(m *Manifest) []string {
	if m.Spec == nil {
		return nil
	}
	return splitNames(m.Spec)
}

type phaseBar struct {
	Name    string
	MS      int64
	X, W    float64
	Classes string
}

// phaseBars draws the phases' durations along one bar.
func phaseBars(m *Manifest) []phaseBar {
	total := max(float64(m.Timings.TotalMS), 1)
	var out []phaseBar
	x := 0.0
	for _, p := range []struct {
		name string
		ms   int64
	}{{"fit", m.Timings.FitMS}, {"transform", m.Timings.TransformMS}, {"commit", m.Timings.CommitMS}} {
		w := float64(p.ms) / total * reportWidth
		out = append(out, phaseBar{Name: p.name, MS: p.ms, X: x, W: w, Classes: "ph-" + p.name})
		x += w
	}
	return out
}

// groupDigits writes n with thin spaces between groups of three digits.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u2009")
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// gnum writes a statistic with up to 6 significant digits.
func gnum(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.6g", *v)
}

// histView is a bar chart of counts over bins.
type histView struct {
	Title  string
	Bars   []bar
	W, H   float64
	Lo, Hi string
	Max    int64
	Note   string
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Tip        string
}

// bars draws counts as bars filling w by h, scaled to the largest.
func bars(counts []int64, w, h float64, class string, tip func(i int) string) ([]bar, int64) {
	top := slices.Max(append([]int64{1}, counts...))
	bw := w / float64(max(len(counts), 1))
	var out []bar
	for i, c := range counts {
		if c == 0 {
			continue
		}
		bh := max(float64(c)/float64(top)*h, 1)
		out = append(out, bar{X: float64(i) * bw, Y: h - bh, W: max(bw-1, 0.5), H: bh, Class: class, Tip: tip(i)})
	}
	return out, top
}

// balance draws the rows per split and the first split's share per split.
func balance(m *Manifest) []histView {
	if len(m.Parts) == 0 {
		return nil
	}
	rows := make([]float64, len(m.Parts))
	shares := make([]float64, 0, len(m.Parts))
	names := splitNamesOf(m)
	for i, p := range m.Parts {
		rows[i] = float64(p.RowsIn)
		if p.RowsIn > 0 && len(names) > 0 {
			shares = append(shares, float64(p.RowsOut[names[0]])/float64(p.RowsIn))
		}
	}
	lo, hi := slices.Min(rows), slices.Max(rows)
	out := []histView{binned("rows per split", rows, lo, hi, "%.0f")}
	if len(names) > 0 {
		out = append(out, binned(names[0]+" share per split", shares, 0, 1, "%.2f"))
	}
	return out
}

// binned is a histogram of vals over balanceBins bins of [lo, hi].
func binned(title string, vals []float64, lo, hi float64, format string) histView {
	counts := make([]int64, balanceBins)
	for _, v := range vals {
		counts[binOf(v, lo, hi, balanceBins)]++
	}
	edge := func(i int) float64 { return lo + (hi-lo)*float64(i)/balanceBins }
	bs, top := bars(counts, histWidth, histHeight, "b", func(i int) string {
		return fmt.Sprintf("%d splits in ["+format+", "+format+"]", counts[i], edge(i), edge(i+1))
	})
	sorted := slices.Clone(vals)
	sort.Float64s(sorted)
	note := ""
	if len(sorted) > 0 {
		note = fmt.Sprintf("min "+format+", median "+format+", max "+format, sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1])
	}
	return histView{Title: title, Bars: bs, W: histWidth, H: histHeight, Lo: fmt.Sprintf(format, lo),
		Hi: fmt.Sprintf(format, hi), Max: top, Note: note}
}

// binOf is the bin of v among n equal bins of [lo, hi].
func binOf(v, lo, hi float64, n int) int {
	if !(hi > lo) {
		return 0
	}
	return min(max(int((v-lo)/(hi-lo)*float64(n)), 0), n-1)
}

// catView is one categorical column's labels in index order.
type catView struct {
	Column string
	Labels []catLabel
	More   string
	Hist   histView
}

type catLabel struct {
	Label, Slot string
	Count       int64
}

func categoricals(model *features.Model) []catView {
	var out []catView
	for _, col := range model.CategoricalColumns() {
		labels, counts := model.Labels(col)
		v := catView{Column: col}
		shown := counts
		if len(labels) > maxLabelBars {
			shown = counts[:maxLabelBars]
			var rest int64
			for _, c := range counts[maxLabelBars:] {
				rest += c
			}
			v.More = fmt.Sprintf("%d more labels with %s rows, the last (%q) dropped", len(labels)-maxLabelBars, groupDigits(rest), labels[len(labels)-1])
		}
		for i, l := range labels[:len(shown)] {
			slot := fmt.Sprintf("slot %d", i)
			if i == len(labels)-1 {
				slot = "dropped (all zeros)"
			}
			v.Labels = append(v.Labels, catLabel{Label: l, Slot: slot, Count: counts[i]})
		}
		bs, top := bars(shown, histWidth, histHeight, "b", func(i int) string {
			return fmt.Sprintf("%q: %d rows, %s", labels[i], counts[i], v.Labels[i].Slot)
		})
		v.Hist = histView{Title: col, Bars: bs, W: histWidth, H: histHeight, Max: top}
		out = append(out, v)
	}
	return out
}

type numView struct {
	S    features.ColumnSummary
	Hist histView
}

// columnHist regroups a column's fine histogram into columnBins equal
// bins of [lo, hi], each fine bin by its middle.
func columnHist(c features.ColumnSummary, lo, hi *float64, class string) histView {
	counts := make([]int64, columnBins)
	if lo != nil && hi != nil {
		for i, edge := range c.Histogram.Lo {
			mid := min(max((edge+c.Histogram.Hi(i))/2, *lo), *hi)
			counts[binOf(mid, *lo, *hi, columnBins)] += c.Histogram.Count[i]
		}
	}
	if class == "" {
		class = "b"
	}
	bs, top := bars(counts, histWidth, histHeight, class, func(i int) string {
		a, b := *lo+(*hi-*lo)*float64(i)/columnBins, *lo+(*hi-*lo)*float64(i+1)/columnBins
		return fmt.Sprintf("%d values in [%.4g, %.4g)", counts[i], a, b)
	})
	return histView{Title: c.Column, Bars: bs, W: histWidth, H: histHeight, Lo: gnum(lo), Hi: gnum(hi), Max: top}
}

type labelView struct {
	Column string
	Splits []numView
}

// labels draws the label's histogram per split on the same bins.
func labels(cs *features.ColumnStats) labelView {
	col, splits := cs.Label()
	v := labelView{Column: col}
	var lo, hi *float64
	for _, s := range splits {
		if s.Min != nil && (lo == nil || *s.Min < *lo) {
			lo = s.Min
		}
		if s.Max != nil && (hi == nil || *s.Max > *hi) {
			hi = s.Max
		}
	}
	for i, s := range splits {
		v.Splits = append(v.Splits, numView{S: s, Hist: columnHist(s, lo, hi, fmt.Sprintf("s%d", i%4))})
	}
	return v
}
