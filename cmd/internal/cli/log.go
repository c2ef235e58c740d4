package cli

import (
	"context"
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"
)

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// NewLogger logs text on a terminal and JSON lines elsewhere (CloudWatch
// shows those as structured events), unless format says otherwise; info
// and above, debug too when env sets SHARDPREP_DEBUG.
func NewLogger(w io.Writer, format LogFormat, env func(string) string) *slog.Logger {
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
	if IsTerminal(w) {
		// On a terminal the progress bar speaks; only warnings log.
		opts.Level = slog.LevelWarn
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// ErrorsOnly is log passing on only records of level error and above
// (--quiet).
func ErrorsOnly(log *slog.Logger) *slog.Logger { return slog.New(errorsOnly{log.Handler()}) }

type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h errorsOnly) WithAttrs(as []slog.Attr) slog.Handler {
	return errorsOnly{h.Handler.WithAttrs(as)}
}
func (h errorsOnly) WithGroup(name string) slog.Handler { return errorsOnly{h.Handler.WithGroup(name)} }
