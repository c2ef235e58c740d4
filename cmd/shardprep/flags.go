package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"github.com/shardprep/shardprep/storage"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// optionalInt64 is an int64 flag that knows whether it was given.
type optionalInt64 struct {
	v   int64
	set bool
}

func (o *optionalInt64) String() string {
	if !o.set {
		return ""
	}
	return strconv.FormatInt(o.v, 10)
}

func (o *optionalInt64) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a whole number: %q", s)
	}
	o.v, o.set = v, true
	return nil
}

// minSplitSize is the smallest --split-size.
const minSplitSize = 64 << 10

// runConfig is a job's settings: run's flags, the job flags of the
// coordinator, or what the container makes of its processing job.
type runConfig struct {
	inputs    stringList
	output    string
	seed      optionalInt64
	workers   int          // splits processed at once by this process
	splitSize storage.Size // 0: not given, chosen by pipeline.SplitSizeFor
	overwrite bool
	onInvalid string
	spec      string
	model     string
	header    bool
	splitMode string
	jobName   string
	logFormat string
	quiet     bool
	store     storeFlags
}

func (f *runConfig) register(fs *flag.FlagSet) {
	fs.Var(&f.inputs, "input", "input CSV `PATH`: a file, a folder or an s3://bucket/key-or-prefix (repeatable; a folder or prefix means every object under it; default: the bundled Abalone sample)")
	fs.StringVar(&f.output, "output", "", "output `DIR` or s3://bucket/prefix (default: a new folder under ./shardprep-out)")
	fs.Var(&f.seed, "seed", "split seed, a whole `N` (default: chosen at random and recorded in the manifest)")
	fs.IntVar(&f.workers, "workers", defaultWorkers(), "splits processed at once by this process, by default one per usable CPU (GOMAXPROCS)")
	fs.Var(&f.splitSize, "split-size", "bytes per input split, a `SIZE` such as 1048576, 512KiB or 64MiB (at least 64KiB; default: about 4 splits per worker slot, from 64KiB to 32MiB)")
	fs.BoolVar(&f.overwrite, "overwrite", false, "replace an earlier shardprep output: delete what shardprep jobs wrote there (refused if anything else is there)")
	fs.StringVar(&f.onInvalid, "on-invalid", "error", "invalid rows: `error` stops the job; skip leaves them out and keeps them under _rejected/")
	fs.StringVar(&f.spec, "spec", "", "pipeline spec JSON `FILE` (default: the Abalone job)")
	fs.StringVar(&f.model, "model", "", "reuse a fitted model JSON `FILE` (e.g. a previous run's _shardprep/model.json) instead of fitting")
	fs.BoolVar(&f.header, "header", false, "the first non-blank line of each input object is a header row")
	fs.StringVar(&f.splitMode, "split-mode", "hash", "`hash`: per-row hash of (seed, object, offset), stable for any worker count; spark: Spark's randomSplit for one-partition inputs")
	fs.StringVar(&f.jobName, "job-name", "", "job `NAME`, recorded in the manifest and in S3 Access Grants audit context (default: shardprep-<time>)")
	fs.StringVar(&f.logFormat, "log-format", "auto", "log `FORMAT`: text, json, or auto (json without a terminal)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output")
	f.store.register(fs)
}

func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("head out/train -n 3"); everything after a "--" is positional. fs.Args()
// then returns the positional arguments in order.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return fs.Parse(append([]string{"--"}, append(pos, rest...)...))
}

// defaultWorkers is the default of --workers: one slot per CPU this
// process may use (GOMAXPROCS, which follows the CPU affinity and a
// container's CPU limit). A variable so that tests can pin it.
var defaultWorkers = func() int { return runtime.GOMAXPROCS(0) }
