// Package progress shows a running job's progress from the pipeline's
// snapshots: on a terminal a bar redrawn in place, one line per phase;
// elsewhere a log record every few seconds. Every says how often the
// pipeline should report.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// Display shows a job's progress: a bar redrawn in place on a terminal,
// a log line every few seconds elsewhere. It is safe for concurrent use.
type Display struct {
	w     io.Writer
	log   *slog.Logger
	tty   bool
	quiet bool
	start time.Time

	mu    sync.Mutex
	phase pipeline.Phase
	drawn bool
	last  pipeline.Snapshot // of the transform phase, for the final line
}

// New returns the Display that draws on w when tty says w is a terminal,
// else logs to log; quiet shows nothing.
func New(w io.Writer, tty bool, log *slog.Logger, quiet bool) *Display {
	return &Display{w: w, log: log, tty: tty, quiet: quiet, start: time.Now()}
}

// Every is how often the pipeline should report progress.
func (p *Display) Every() time.Duration {
	if p.tty {
		return 200 * time.Millisecond
	}
	return 5 * time.Second
}

// Update shows s.
func (p *Display) Update(s pipeline.Snapshot) {
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

// Finish ends the bar's line, once the job has ended.
func (p *Display) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
