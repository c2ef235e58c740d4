package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"
)

// NewFlagSet returns the flag set of command name: -h prints usage and
// then every flag spelled --name; Parse returns a parse error as one
// line, not printed.
func NewFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		printFlags(stderr, fs)
	}
	return fs
}

// Parse parses args into fs, a flag set of NewFlagSet, allowing flags
// after positional arguments ("head out/train -n 3"); everything after a
// "--" is positional. fs.Args() then returns the positional arguments in
// order. On -h it prints the help and returns flag.ErrHelp; a mistake is
// a one-line UsageError of the command.
func Parse(fs *flag.FlagSet, args []string) error {
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

// parseFlagSet is fs.Parse for a flag set of NewFlagSet: on -h it prints
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
// It compiles at first use.
var flagParseError = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:invalid value "(.*)" for flag -(\S+): (.*)|invalid boolean value "(.*)" for -(\S+): .*|flag needs an argument: -(\S+)|flag provided but not defined: -(\S+))$`)
})

// flagError rewords an error of the flag package as a usage error of the
// command of fs that spells flags as help does and, for an unknown flag,
// suggests the nearest one.
func flagError(fs *flag.FlagSet, err error) error {
	m := flagParseError().FindStringSubmatch(err.Error())
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
	return &UsageError{msg: msg, cmd: fs.Name()}
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
