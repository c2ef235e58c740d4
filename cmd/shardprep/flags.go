package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
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

// byteSize is a size flag: 1048576, 64KiB, 32MiB, 1GiB, 10MB.
type byteSize int64

func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}

func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("not a positive size: %q (e.g. 1048576, 64KiB, 32MiB)", s)
	}
	return v * mult, nil
}

// formatBytes writes a size for people: in whole binary units when it is
// a whole number of them (32MiB, as the size flags take it), else in
// decimal units with one digit after the point (191.9 kB).
func formatBytes(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// runConfig is a job's settings: run's flags, the job flags of the
// coordinator, or what the container makes of its processing job.
type runConfig struct {
	inputs    stringList
	output    string
	seed      optionalInt64
	workers   int // splits processed at once by this process
	splitSize byteSize
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
	f.splitSize = 32 << 20
	fs.Var(&f.inputs, "input", "input CSV `PATH`: a file, a folder or an s3://bucket/key-or-prefix (repeatable; a folder or prefix means every object under it; default: the bundled Abalone sample)")
	fs.StringVar(&f.output, "output", "", "output `DIR` or s3://bucket/prefix (default: a new folder under ./shardprep-out)")
	fs.Var(&f.seed, "seed", "split seed, a whole `N` (default: chosen at random and recorded in the manifest)")
	fs.IntVar(&f.workers, "workers", defaultWorkers(), "splits processed at once by this process")
	fs.Var(&f.splitSize, "split-size", "bytes per input split, a `SIZE` such as 1048576, 512KiB or 64MiB")
	fs.BoolVar(&f.overwrite, "overwrite", false, "replace an earlier shardprep output: delete what shardprep jobs wrote there (refused if anything else is there)")
	fs.StringVar(&f.onInvalid, "on-invalid", "error", "invalid rows: `error` stops the job; skip leaves them out and keeps them under _rejected/")
	fs.StringVar(&f.spec, "spec", "", "pipeline spec JSON `FILE` (default: the Abalone job)")
	fs.StringVar(&f.model, "model", "", "reuse a fitted model JSON `FILE` (e.g. a previous run's _shardprep/model.json) instead of fitting")
	fs.BoolVar(&f.header, "header", false, "the first line of each input object is a header row")
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

// defaultWorkers is the default of --workers: one slot per CPU. A
// variable so that tests can pin it.
var defaultWorkers = runtime.NumCPU
