package cli

import (
	"errors"
	"flag"
	"strconv"
	"strings"
	"time"
)

// StringList is a repeatable flag: each use appends its value.
type StringList []string

func (s *StringList) String() string { return strings.Join(*s, ",") }
func (s *StringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// OptionalInt64 is an int64 flag that knows whether it was given.
type OptionalInt64 struct {
	v   int64
	set bool
}

func (o *OptionalInt64) String() string {
	if !o.set {
		return ""
	}
	return strconv.FormatInt(o.v, 10)
}

func (o *OptionalInt64) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not a whole number")
	}
	o.v, o.set = v, true
	return nil
}

// Int64 returns the value and whether it was given.
func (o *OptionalInt64) Int64() (int64, bool) { return o.v, o.set }

// LogFormat is the --log-format flag: text, json or auto.
type LogFormat string

func (f *LogFormat) String() string { return string(*f) }
func (f *LogFormat) Get() any       { return string(*f) }
func (f *LogFormat) Set(s string) error {
	switch s {
	case "text", "json", "auto":
		*f = LogFormat(s)
		return nil
	}
	return errors.New("want text, json or auto")
}

// LogFormatVar registers --log-format on fs, auto by default.
func LogFormatVar(fs *flag.FlagSet, p *LogFormat) {
	*p = "auto"
	fs.Var(p, "log-format", "log `FORMAT`: text, json, or auto (json without a terminal)")
}

// Days is a duration flag that also takes whole days: 10d, 2d12h, 90m.
type Days time.Duration

func (d *Days) String() string { return time.Duration(*d).String() }
func (d *Days) Get() any       { return time.Duration(*d) }
func (d *Days) Set(s string) error {
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
	*d = Days(whole + v)
	return nil
}
