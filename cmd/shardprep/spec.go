package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/stores"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/storage"
)

// runSpec runs a spec subcommand: "spec infer" drafts a spec from a
// sample of a CSV object.
func runSpec(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("spec infer", specUsage, stderr)
	header := fs.Bool("header", false, "the first row of the sample names the columns (default: they are named c0, c1, ...)")
	rows := fs.Int("rows", 1000, "data rows to sample")
	var sf storage.S3Config
	registerStore(fs, &sf)
	switch {
	case len(args) > 0 && args[0] == "infer":
		args = args[1:]
	case len(args) > 0 && (strings.TrimLeft(args[0], "-") == "h" || strings.TrimLeft(args[0], "-") == "help"):
	default:
		return cli.Usagef("spec needs a subcommand: shardprep spec infer FILE (see shardprep spec -h)")
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("spec infer needs exactly one FILE, folder or s3:// location")
	}
	if *rows < 1 {
		return cli.Usagef("--rows must be at least 1")
	}
	if err := stores.Check(sf); err != nil {
		return err
	}
	st := stores.New(sf, env, cli.NewLogger(stderr, "auto", env))
	rc, url, err := st.OpenFirst(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer rc.Close()
	inf, err := features.InferSpec(rc, &features.InferOptions{Header: *header, Rows: *rows})
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	if _, err := stdout.Write(inf.Spec); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "shardprep: a draft spec of %s from %s; check it before use:\n", url, cli.Plural(inf.Rows, "sampled row"))
	for _, n := range inf.Notes {
		fmt.Fprintf(stderr, "  %s\n", n)
	}
	return nil
}
