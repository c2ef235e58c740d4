package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/shardprep/shardprep/features"
)

// runSpec runs a spec subcommand: "spec infer" drafts a spec from a
// sample of a CSV object.
func runSpec(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("spec infer", specUsage, stderr)
	header := fs.Bool("header", false, "the first row of the sample names the columns (default: they are named c0, c1, ...)")
	rows := fs.Int("rows", 1000, "data rows to sample")
	var sf storeFlags
	sf.register(fs)
	switch {
	case len(args) > 0 && args[0] == "infer":
		args = args[1:]
	case len(args) > 0 && strings.TrimLeft(args[0], "-") == "h" || len(args) > 0 && strings.TrimLeft(args[0], "-") == "help":
	default:
		return &flagUsageError{usageError{"a subcommand is needed: shardprep spec infer FILE"}, "spec"}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("spec infer needs exactly one FILE, folder or s3:// location")
	}
	if *rows < 1 {
		return usagef("--rows must be at least 1")
	}
	if err := sf.check(); err != nil {
		return err
	}
	st := newStores(sf, env, newLogger(stderr, "auto", env))
	objs, err := listInputs(ctx, st, fs.Args(), "")
	if err != nil {
		return err
	}
	obj := objs[0] // of a folder or prefix, the first by name
	rc, err := st.NewRangeReader(ctx, obj.URL, obj.ETag, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if strings.HasSuffix(obj.Name, ".gz") {
		gz, err := gzip.NewReader(rc)
		if err != nil {
			return fmt.Errorf("%s: %w", obj.URL, err)
		}
		r = gz
	}
	inf, err := features.InferSpec(r, &features.InferOptions{Header: *header, Rows: *rows})
	if err != nil {
		return fmt.Errorf("%s: %w", obj.URL, err)
	}
	if _, err := stdout.Write(inf.Spec); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "shardprep: a draft spec of %s from %s; check it before use:\n", obj.URL, plural(inf.Rows, "sampled row"))
	for _, n := range inf.Notes {
		fmt.Fprintf(stderr, "  %s\n", n)
	}
	return nil
}
