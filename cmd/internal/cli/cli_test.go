package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// testFlags is a flag set of each kind of flag the commands use.
func testFlags(stderr io.Writer) *flag.FlagSet {
	fs := NewFlagSet("run", "Usage: shardprep run [flags]\n", stderr)
	var (
		inputs StringList
		seed   OptionalInt64
		format LogFormat
		d      Days
	)
	fs.Var(&inputs, "input", "input `PATH` (repeatable)")
	fs.String("output", "", "output `DIR`")
	fs.Var(&seed, "seed", "split seed")
	fs.Int("workers", 4, "splits at once")
	fs.Bool("quiet", false, "print only errors")
	fs.Duration("lease", 30*time.Second, "lease")
	fs.Var(&d, "max-runtime", "runtime `duration`")
	LogFormatVar(fs, &format)
	fs.Int("n", 5, "rows")
	return fs
}

// TestFlagErrors: each mistake is one usage error of the command that
// spells the flag as help does, says why a value is refused, and names
// the nearest flag for a misspelt one.
func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--inptu", "x"}, "unknown flag --inptu (did you mean --input?)"},
		{[]string{"--ouput", "x"}, "unknown flag --ouput (did you mean --output?)"},
		{[]string{"--work"}, "unknown flag --work (did you mean --workers?)"},
		{[]string{"--zzz"}, "unknown flag --zzz"},
		{[]string{"--seed", "abc"}, `--seed "abc": not a whole number`},
		{[]string{"--workers", "x"}, `--workers "x": not a whole number`},
		{[]string{"--lease", "5"}, `--lease "5": not a duration such as 90s, 15m or 2h`},
		{[]string{"--max-runtime", "ten"}, `--max-runtime "ten": not a duration such as 90m, 12h or 9d`},
		{[]string{"--log-format", "yaml"}, `--log-format "yaml": want text, json or auto`},
		{[]string{"--workers"}, "--workers needs a value"},
		{[]string{"--quiet=maybe"}, `--quiet "maybe": not true or false`},
		{[]string{"-n", "x"}, `-n "x": not a whole number`},
	} {
		err := Parse(testFlags(io.Discard), c.args)
		var ue *UsageError
		if !errors.As(err, &ue) || err.Error() != c.want {
			t.Errorf("%q: error %v, want the usage error %q", c.args, err, c.want)
			continue
		}
		var stderr bytes.Buffer
		if code := ExitCode(err, &stderr); code != 2 || stderr.String() != "shardprep run: "+c.want+"\nrun 'shardprep run -h' for help\n" {
			t.Errorf("%q: exit %d, printed %q", c.args, code, stderr.String())
		}
	}
}

// TestParseFlagsAfterArguments: flags may follow positional arguments,
// and everything after -- is positional, in order.
func TestParseFlagsAfterArguments(t *testing.T) {
	fs := testFlags(io.Discard)
	if err := Parse(fs, []string{"a", "--workers", "2", "b", "--", "--quiet", "c"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fs.Args(), " "); got != "a b --quiet c" {
		t.Errorf("positional arguments %q", got)
	}
	if w := fs.Lookup("workers").Value.String(); w != "2" {
		t.Errorf("--workers %s", w)
	}
	if q := fs.Lookup("quiet").Value.String(); q != "false" {
		t.Errorf("--quiet after -- was parsed as a flag")
	}
}

// TestHelpListsFlags: -h prints the usage text, then every flag as --name
// TYPE (one-letter ones as -n) with its default unless it is the zero
// value, and returns flag.ErrHelp, which exits 0.
func TestHelpListsFlags(t *testing.T) {
	var stderr bytes.Buffer
	err := Parse(testFlags(&stderr), []string{"-h"})
	if !errors.Is(err, flag.ErrHelp) || ExitCode(err, io.Discard) != 0 {
		t.Fatalf("-h: %v", err)
	}
	help := stderr.String()
	for _, want := range []string{
		"Usage: shardprep run [flags]\n",
		"  --input PATH\n        input PATH (repeatable)\n",
		"  --workers int\n        splits at once (default 4)\n",
		"  --log-format FORMAT\n        log FORMAT: text, json, or auto (json without a terminal) (default \"auto\")\n",
		"  --max-runtime duration\n        runtime duration\n",
		"  -n int\n        rows (default 5)\n",
		"  --quiet\n        print only errors\n",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}

func TestFlagValues(t *testing.T) {
	var seed OptionalInt64
	if _, ok := seed.Int64(); ok || seed.String() != "" {
		t.Errorf("an unset seed is set")
	}
	if err := seed.Set("-7"); err != nil {
		t.Fatal(err)
	}
	if v, ok := seed.Int64(); !ok || v != -7 || seed.String() != "-7" {
		t.Errorf("seed %d %v %q", v, ok, seed.String())
	}
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "2d12h": 60 * time.Hour, "9d": 216 * time.Hour, "0d": 0} {
		var d Days
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("Days %q: %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	for _, in := range []string{"ten", "d", "1e3d", "100001d", "2dx"} {
		var d Days
		if err := d.Set(in); err == nil {
			t.Errorf("Days %q accepted as %v", in, time.Duration(d))
		}
	}
	var l StringList
	l.Set("a")
	l.Set("b")
	if l.String() != "a,b" || len(l) != 2 {
		t.Errorf("StringList %q", l.String())
	}
}

// TestExitCode: usage errors exit 2 and print one line; an interrupted job
// exits 130; a logged error is not printed again; others exit 1.
func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err   error
		code  int
		print string
	}{
		{nil, 0, ""},
		{Usagef("no command given"), 2, "shardprep: no command given\n"},
		{fmt.Errorf("interrupted: %w", context.Canceled), 130, "shardprep: interrupted: context canceled\n"},
		{Logged(errors.New("container failed")), 1, ""},
		{Logged(fmt.Errorf("stopped: %w", context.Canceled)), 130, ""},
		{errors.New("input x: no such file"), 1, "shardprep: input x: no such file\n"},
	} {
		var stderr bytes.Buffer
		if code := ExitCode(c.err, &stderr); code != c.code || stderr.String() != c.print {
			t.Errorf("%v: exit %d, printed %q; want %d, %q", c.err, code, stderr.String(), c.code, c.print)
		}
	}
	if Plural(1, "split") != "1 split" || Plural(3, "object") != "3 objects" {
		t.Errorf("Plural")
	}
}

// TestErrorsOnly: the --quiet logger passes on errors only.
func TestErrorsOnly(t *testing.T) {
	var buf bytes.Buffer
	log := ErrorsOnly(NewLogger(&buf, "json", func(string) string { return "" })).With("job", "j")
	log.Info("job planned")
	log.Warn("slow")
	log.Error("failed")
	if got := strings.TrimSpace(buf.String()); strings.Count(got, "\n") != 0 || !strings.Contains(got, `"msg":"failed"`) || !strings.Contains(got, `"job":"j"`) {
		t.Errorf("quiet logger wrote:\n%s", got)
	}
}
