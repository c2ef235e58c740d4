package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

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
		return errors.New("not a whole number")
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
	format    string // --output-format; "": the spec's
	jobName   string
	logFormat logFormat
	quiet     bool
	metrics   string // run's --metrics ADDR
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
	fs.StringVar(&f.format, "output-format", "", "parts in `FORMAT`: text (label,f1,...,fn lines), csv (those lines under a header row), libsvm or parquet (default: the spec's output.format, else text)")
	fs.StringVar(&f.splitMode, "split-mode", "hash", "`hash`: per-row hash of (seed, object, offset), stable for any worker count; spark: Spark's randomSplit for one-partition inputs")
	fs.StringVar(&f.jobName, "job-name", "", "job `NAME`, recorded in the manifest and in S3 Access Grants audit context (default: shardprep-<time>)")
	logFormatVar(fs, &f.logFormat, "log `FORMAT`: text, json, or auto (json without a terminal)")
	fs.BoolVar(&f.quiet, "quiet", false, "print only errors: no progress, no info logs, no summary")
	f.store.register(fs)
}

// newFlagSet returns the flag set of a command: -h prints usage and then
// every flag spelled --name (see printFlags); a parse error is returned as
// one line (see parseFlagSet), not printed.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		printFlags(stderr, fs)
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
		if err := parseFlagSet(fs, args); err != nil {
			return err
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

// parseFlagSet is fs.Parse for a flag set of newFlagSet: on -h it prints
// the help and returns flag.ErrHelp; a mistake is a one-line usage error
// of the command (flagError).
func parseFlagSet(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {} // the flag package calls it on errors too
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	}
	return flagError(fs, err)
}

// flagName spells a flag as help and errors do: --name, or -n for a
// one-letter name.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// printFlags prints the flags of fs in name order, each as --name TYPE on
// one line and its usage, with the default, on the next.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		head := "  " + flagName(f.Name)
		if typ != "" {
			head += " " + typ
		}
		fmt.Fprintf(w, "%s\n        %s%s\n", head, usage, defaultNote(f))
	})
}

// defaultNote is " (default X)" unless the default is the zero value of
// the flag's type, as the flag package decides.
func defaultNote(f *flag.Flag) string {
	if t := reflect.TypeOf(f.Value); t.Kind() == reflect.Pointer {
		if zero, ok := reflect.New(t.Elem()).Interface().(flag.Value); ok && zero.String() == f.DefValue {
			return ""
		}
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, isString := g.Get().(string); isString {
			return fmt.Sprintf(" (default %q)", f.DefValue)
		}
	}
	return " (default " + f.DefValue + ")"
}

// flagParseError matches the flag package's error texts.
var flagParseError = regexp.MustCompile(`^(?:invalid value "(.*)" for flag -(\S+): (.*)|invalid boolean value "(.*)" for -(\S+): .*|flag needs an argument: -(\S+)|flag provided but not defined: -(\S+))$`)

// flagError rewords an error of the flag package as a usage error of the
// command of fs that spells flags as help does and, for an unknown flag,
// suggests the nearest one.
func flagError(fs *flag.FlagSet, err error) error {
	m := flagParseError.FindStringSubmatch(err.Error())
	msg := err.Error()
	switch {
	case m == nil:
	case m[2] != "":
		msg = fmt.Sprintf("%s %q: %s", flagName(m[2]), m[1], valueReason(fs.Lookup(m[2]), m[3]))
	case m[5] != "":
		msg = fmt.Sprintf("%s %q: not true or false", flagName(m[5]), m[4])
	case m[6] != "":
		msg = fmt.Sprintf("%s needs a value", flagName(m[6]))
	case m[7] != "":
		msg = "unknown flag " + flagName(m[7])
		if near := nearestFlag(fs, m[7]); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", flagName(near))
		}
	}
	return &flagUsageError{usageError{msg}, fs.Name()}
}

// valueReason says why a value of flag f was refused, for the flag
// package's "parse error" by the flag's type.
func valueReason(f *flag.Flag, reason string) string {
	if f == nil || reason != "parse error" {
		return reason
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return reason
	}
	switch g.Get().(type) {
	case int, int64:
		return "not a whole number"
	case uint, uint64:
		return "not a whole number of 0 or more"
	case float64:
		return "not a number"
	case time.Duration:
		return "not a duration such as 90s, 15m or 2h"
	}
	return reason
}

// nearestFlag returns the flag of fs nearest to name: the only flag that
// name begins, or the one fewest edits away (1 for short names, 2 for
// longer ones); "" if none is near.
func nearestFlag(fs *flag.FlagSet, name string) string {
	var best, prefixed []string
	bestD := 2
	if len(name) <= 4 {
		bestD = 1
	}
	bestD++
	fs.VisitAll(func(f *flag.Flag) {
		if len(name) >= 3 && strings.HasPrefix(f.Name, name) {
			prefixed = append(prefixed, f.Name)
		}
		switch d := editDistance(name, f.Name); {
		case d < bestD:
			best, bestD = []string{f.Name}, d
		case d == bestD:
			best = append(best, f.Name)
		}
	})
	if len(best) == 1 {
		return best[0]
	}
	if len(best) == 0 && len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// logFormat is the --log-format flag: text, json or auto.
type logFormat string

func (f *logFormat) String() string { return string(*f) }
func (f *logFormat) Get() any       { return string(*f) }
func (f *logFormat) Set(s string) error {
	switch s {
	case "text", "json", "auto":
		*f = logFormat(s)
		return nil
	}
	return errors.New("want text, json or auto")
}

// logFormatVar registers --log-format, auto by default.
func logFormatVar(fs *flag.FlagSet, p *logFormat, usage string) {
	*p = "auto"
	fs.Var(p, "log-format", usage)
}

// days is a duration flag that also takes whole days: 10d, 2d12h, 90m.
type days time.Duration

func (d *days) String() string { return time.Duration(*d).String() }
func (d *days) Get() any       { return time.Duration(*d) }
func (d *days) Set(s string) error {
	var whole time.Duration
	if n, rest, ok := strings.Cut(s, "d"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		k, err := strconv.Atoi(n)
		if err != nil || k > 100000 {
			return errors.New("not a duration such as 90m, 12h or 9d")
		}
		whole, s = time.Duration(k)*24*time.Hour, rest
		if s == "" {
			s = "0s"
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 90m, 12h or 9d")
	}
	*d = days(whole + v)
	return nil
}

// defaultWorkers is the default of --workers: one slot per CPU this
// process may use (GOMAXPROCS, which follows the CPU affinity and a
// container's CPU limit). A variable so that tests can pin it.
var defaultWorkers = func() int { return runtime.GOMAXPROCS(0) }
