package roles

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

func printSummary(w io.Writer, m *pipeline.Manifest, output string, wall time.Duration) {
	if l, ok := w.(*logLines); ok { // the container's stdout: one event
		l.summary(m, output, wall)
		return
	}
	secs := wall.Seconds()
	fmt.Fprintf(w, "shardprep: committed %s\n", output)
	fmt.Fprintf(w, "  rows read   %d (%s, %s, %s)\n", m.Totals.RowsIn+m.Totals.Rejected,
		cli.Plural(len(m.Inputs), "object"), storage.Size(m.Totals.BytesIn), cli.Plural(len(m.Parts), "split"))
	for _, s := range m.Spec.Splits {
		fmt.Fprintf(w, "  %-11s %d\n", s.Name, m.Totals.RowsOut[s.Name])
	}
	fmt.Fprintf(w, "  rejected    %d\n", m.Totals.Rejected)
	fmt.Fprintf(w, "  seed        %d (%s split)\n", m.Seed, m.SplitMode)
	fmt.Fprintf(w, "  wall time   %.2fs, %.1f MB/s, %.0f rows/s\n", secs, float64(m.Totals.BytesIn)/1e6/secs, float64(m.Totals.RowsIn)/secs)
	if len(m.Workers) > 1 {
		for _, ws := range m.Workers {
			fmt.Fprintf(w, "  worker %-20s %d tasks, %d rows, %.1f MB/s\n", ws.Worker, ws.Tasks, ws.Rows, float64(ws.Bytes)/1e6/secs)
		}
	}
}

// logLines logs each line written to it, so that a command's plain stdout
// lines reach a log reader as JSON lines too.
type logLines struct {
	log *slog.Logger

	mu  sync.Mutex
	buf []byte
}

func (w *logLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.log.Info(line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// summary logs a committed job's summary as one event with the fields of
// printSummary's lines.
func (w *logLines) summary(m *pipeline.Manifest, output string, wall time.Duration) {
	secs := wall.Seconds()
	var rows []any
	for _, s := range m.Spec.Splits {
		rows = append(rows, slog.Int64(s.Name, m.Totals.RowsOut[s.Name]))
	}
	attrs := []any{"output", output, "rows_read", m.Totals.RowsIn + m.Totals.Rejected, "objects", len(m.Inputs),
		"bytes", m.Totals.BytesIn, "splits", len(m.Parts), slog.Group("rows_out", rows...), "rejected", m.Totals.Rejected,
		"seed", m.Seed, "split_mode", m.SplitMode, "wall_s", round2(secs),
		"mb_per_s", round2(float64(m.Totals.BytesIn) / 1e6 / secs), "rows_per_s", int64(float64(m.Totals.RowsIn) / secs)}
	if len(m.Workers) > 1 {
		var ws []any
		for _, s := range m.Workers {
			ws = append(ws, slog.Group(s.Worker, "tasks", s.Tasks, "rows", s.Rows))
		}
		attrs = append(attrs, slog.Group("workers", ws...))
	}
	w.log.Info("job summary", attrs...)
}

func round2(f float64) float64 { return float64(int64(f*100)) / 100 }

// writeFailedReport writes the report of a job that failed, as far as it
// got, and prints where: in a local output under the report's usual name
// (the only object a failed job leaves there; a later job replaces it), and
// for an S3 output beside the system's temporary files. p's claim must
// still be held.
func writeFailedReport(ctx context.Context, c *pipeline.Coordinator, cause error, p *prepared, stdout io.Writer) {
	var html bytes.Buffer
	if c.WriteReport(&html, cause.Error()) != nil {
		return
	}
	if p.local {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if p.sink.Put(ctx, pipeline.ReportKey, html.Bytes()) == nil {
			fmt.Fprintf(stdout, "shardprep: the failed job's report: %s\n", p.sink.URL(pipeline.ReportKey))
			return
		}
	}
	m := c.Manifest()
	name := "shardprep-report-" + m.RunID + ".html"
	if m.Job != "" {
		name = m.Job + "-" + m.RunID + "-report.html"
	}
	path := filepath.Join(os.TempDir(), strings.ReplaceAll(name, "/", "_"))
	if os.WriteFile(path, html.Bytes(), 0o644) == nil {
		fmt.Fprintf(stdout, "shardprep: the failed job's report: %s\n", path)
	}
}

// serveMetrics serves c's metrics on addr until the returned stop is
// called.
func serveMetrics(c *pipeline.Coordinator, addr string, stdout io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", c.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	fmt.Fprintf(stdout, "shardprep: metrics on http://%s/metrics\n", ln.Addr())
	return func() { srv.Close(); <-done }, nil
}
