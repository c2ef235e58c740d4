package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger logs text on a terminal and JSON lines elsewhere (CloudWatch
// shows those as structured events), unless format says otherwise.
func newLogger(w io.Writer, format logFormat, env func(string) string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if env("SHARDPREP_DEBUG") != "" {
		opts.Level = slog.LevelDebug
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts))
	case "text":
		return slog.New(slog.NewTextHandler(w, opts))
	}
	if isTerminal(w) {
		// On a terminal the progress bar speaks; only warnings log.
		opts.Level = slog.LevelWarn
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// errorsOnly passes on only records of level error and above (--quiet).
type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h errorsOnly) WithAttrs(as []slog.Attr) slog.Handler {
	return errorsOnly{h.Handler.WithAttrs(as)}
}
func (h errorsOnly) WithGroup(name string) slog.Handler { return errorsOnly{h.Handler.WithGroup(name)} }

// progress shows a job's progress: a bar redrawn in place on a terminal,
// a log line every few seconds elsewhere.
type progress struct {
	w     io.Writer
	log   *slog.Logger
	tty   bool
	quiet bool
	start time.Time

	mu      sync.Mutex
	phase   pipeline.Phase
	drawn   bool
	lastLog time.Time
	last    pipeline.Snapshot // of the transform phase, for the final line
}

func newProgress(w io.Writer, log *slog.Logger, quiet bool) *progress {
	return &progress{w: w, log: log, tty: isTerminal(w), quiet: quiet, start: time.Now()}
}

func (p *progress) every() time.Duration {
	if p.tty {
		return 200 * time.Millisecond
	}
	return 5 * time.Second
}

func (p *progress) update(s pipeline.Snapshot) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		p.log.Info("progress", "phase", string(s.Phase), "splits_done", s.SplitsDone, "splits", s.SplitsTotal,
			"bytes_done", s.BytesDone, "bytes", s.BytesTotal, "rows", s.Rows, "workers", s.Workers,
			"elapsed_s", int(time.Since(p.start).Seconds()))
		return
	}
	switch s.Phase {
	case pipeline.PhaseFit, pipeline.PhaseTransform:
		p.last = s
	case pipeline.PhaseCommit, pipeline.PhaseCommitted:
		if p.last.Phase != pipeline.PhaseTransform {
			return
		}
		// The transform is over: show it complete.
		s = p.last
		s.BytesDone, s.SplitsDone = s.BytesTotal, s.SplitsTotal
	default:
		return
	}
	if p.drawn && s.Phase != p.phase {
		fmt.Fprintln(p.w)
	}
	p.phase, p.drawn = s.Phase, true
	frac := 0.0
	if s.BytesTotal > 0 {
		frac = float64(s.BytesDone) / float64(s.BytesTotal)
	}
	const width = 30
	n := int(frac * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	fmt.Fprintf(p.w, "\r%-9s [%s] %3.0f%%  %s / %s  %d rows  %d/%d splits ",
		s.Phase, bar, frac*100, storage.Size(s.BytesDone), storage.Size(s.BytesTotal), s.Rows, s.SplitsDone, s.SplitsTotal)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
