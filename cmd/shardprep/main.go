// Command shardprep turns CSV datasets into train/validation text parts with
// the features of a PySpark StringIndexer -> OneHotEncoder -> VectorAssembler
// pipeline, on one machine, against S3 or MinIO, or across many hosts.
//
// Each command parses its flags into a typed config and runs it: run
// (runConfig, runjob.go), coordinator and worker (coordinatorConfig and
// workerConfig, cluster.go). The container command (container.go) builds
// those configs from the SageMaker Processing job that package container
// reads and completes (container.Job.Complete). stores.go wires storage
// (the S3 flags fill a storage.S3Config), submit.go launches SageMaker
// jobs, progress.go prints progress and logs; clean (clean.go) removes
// what a job that did not commit left; report (report.go) rebuilds a
// job's HTML report and serves run's --metrics; head and gen are small tools. Each command's help text is help/<command>.txt, embedded by
// help.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// flagUsageError is a mistake in the flags of command cmd, which main
// follows with a pointer to the command's help.
type flagUsageError struct {
	usageError
	cmd string
}

func (e *flagUsageError) Unwrap() error { return &e.usageError }

// loggedError is an error already reported as a log record (JSON lines
// in the container), which main must not print again.
type loggedError struct{ err error }

func (e *loggedError) Error() string { return e.err.Error() }
func (e *loggedError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode prints err as one line and maps it to the process status.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	var logged *loggedError
	var fe *flagUsageError
	switch {
	case errors.As(err, &logged):
	case errors.As(err, &fe):
		fmt.Fprintf(stderr, "shardprep %s: %v\nrun 'shardprep %s -h' for help\n", fe.cmd, err, fe.cmd)
	default:
		fmt.Fprintf(stderr, "shardprep: %v\n", err)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

// run is the whole program: main only adds the process around it.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return configured(parseRun, runJob)(ctx, rest, env, stdout, stderr)
	case "coordinator":
		return configured(parseCoordinator, runCoordinator)(ctx, rest, env, stdout, stderr)
	case "worker":
		return configured(parseWorker, runWorker)(ctx, rest, env, stdout, stderr)
	case "clean":
		return configured(parseClean, runClean)(ctx, rest, env, stdout, stderr)
	case "container":
		return runContainer(ctx, rest, env, stdout, stderr)
	case "submit":
		return runSubmit(ctx, rest, env, stdout, stderr)
	case "head":
		return runHead(ctx, rest, env, stdout, stderr)
	case "report":
		return runReport(ctx, rest, env, stdout, stderr)
	case "gen":
		return runGen(ctx, rest, env, stdout, stderr)
	case "spec":
		return runSpec(ctx, rest, env, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, topUsage)
		return nil
	}
	fmt.Fprint(stderr, topUsage)
	return usagef("unknown command %q", cmd)
}

// configured is a command that parses its flags into a config C, then
// runs it.
func configured[C any](parse func([]string, func(string) string, io.Writer) (C, error),
	run func(context.Context, C, func(string) string, io.Writer, io.Writer) error,
) func(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
		cfg, err := parse(args, env, stderr)
		if err != nil {
			return err
		}
		return run(ctx, cfg, env, stdout, stderr)
	}
}
