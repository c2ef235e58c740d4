// Command shardprep turns CSV datasets into train/validation text parts with
// the features of a PySpark StringIndexer -> OneHotEncoder -> VectorAssembler
// pipeline, on one machine, against S3 or MinIO, or across many hosts.
//
// This package holds the commands' flag parsing, wiring and printing.
// Each command parses its flags into a typed config and runs it: run,
// coordinator and worker (flags.go) fill a roles.Job, roles.Coordinator
// and roles.Worker, which package roles runs; the container command
// (container.go) parses the container's flags and arguments into a
// roles.Container that roles completes from the SageMaker Processing job
// and runs. submit (submit.go) builds the CreateProcessingJob request
// that package sagemaker sends, after checking its job arguments with the
// container's own parser; clean (clean.go) removes what a job that did not
// commit left; report (report.go) rebuilds a job's HTML report; head and
// gen are small tools. Package cli holds the flag and error machinery,
// package stores the storage wiring, package sample the bundled dataset.
// Each command's help text is help/<command>.txt, embedded by help.go.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/roles"
)

func main() {
	hugeHeap = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err, os.Stderr))
}

// hugeHeap is whether the jobs that run here ask for huge pages for
// their heap (roles.Process.HugeHeap): in the shardprep process, not in
// the tests that call run.
var hugeHeap bool

// run is the whole program: main only adds the process around it.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return cli.Usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	p := &roles.Process{Env: env, Stdout: stdout, Stderr: stderr, HugeHeap: hugeHeap}
	switch cmd {
	case "run":
		return configured(ctx, rest, env, stderr, parseRun, p.Run)
	case "coordinator":
		return configured(ctx, rest, env, stderr, parseCoordinator, p.Coordinate)
	case "worker":
		return configured(ctx, rest, env, stderr, parseWorker, p.Work)
	case "clean":
		return configured(ctx, rest, env, stderr, parseClean, func(ctx context.Context, cfg *cleanConfig) error {
			return runClean(ctx, cfg, env, stdout, stderr)
		})
	case "container":
		return runContainer(ctx, rest, p)
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
	return cli.Usagef("unknown command %q", cmd)
}

// configured parses a command's flags in args into a config C with
// parse, then runs it with run.
func configured[C any](ctx context.Context, args []string, env func(string) string, stderr io.Writer,
	parse func([]string, func(string) string, io.Writer) (C, error), run func(context.Context, C) error,
) error {
	cfg, err := parse(args, env, stderr)
	if err != nil {
		return err
	}
	return run(ctx, cfg)
}
