package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// UsageError is a command-line mistake: exit status 2.
type UsageError struct {
	msg string
	cmd string // set for a mistake in the flags of command cmd
}

func (e *UsageError) Error() string { return e.msg }

// Usagef is a UsageError with the message of fmt.Sprintf.
func Usagef(format string, args ...any) error { return &UsageError{msg: fmt.Sprintf(format, args...)} }

// loggedError is an error already reported as a log record (JSON lines in
// the container), which ExitCode must not print again.
type loggedError struct{ err error }

func (e *loggedError) Error() string { return e.err.Error() }
func (e *loggedError) Unwrap() error { return e.err }

// Logged marks err as already logged: ExitCode only maps it to a status.
func Logged(err error) error { return &loggedError{err} }

// ExitCode prints err to stderr as one line (a flag mistake adds a
// pointer to its command's help) and maps it to the process status: 0
// for none or -h, 2 for a UsageError, 130 for an interrupted job, else 1.
func ExitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var logged *loggedError
	var ue *UsageError
	isUsage := errors.As(err, &ue)
	switch {
	case errors.As(err, &logged):
	case isUsage && ue.cmd != "":
		fmt.Fprintf(stderr, "shardprep %s: %v\nrun 'shardprep %s -h' for help\n", ue.cmd, err, ue.cmd)
	default:
		fmt.Fprintf(stderr, "shardprep: %v\n", err)
	}
	switch {
	case isUsage:
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	}
	return 1
}
