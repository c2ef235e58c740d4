package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/shardprep/sample"
	"github.com/shardprep/shardprep/storage"
)

// runGen writes deterministic Abalone-like CSV (sample.Generate) to a
// file, published whole or not at all, or to standard output.
func runGen(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("gen", genUsage, stderr)
	rows := fs.Int64("rows", 0, "rows to write (required)")
	out := fs.String("out", "", "output `FILE` (required; - for standard output)")
	seed := fs.Uint64("seed", 1, "generator seed")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *rows <= 0 || *out == "" {
		return cli.Usagef("gen needs --rows N (N > 0) and --out FILE")
	}
	if *out == "-" {
		return sample.Generate(ctx, stdout, *rows, *seed)
	}
	dir, err := storage.OpenLocal(filepath.Dir(*out))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons the file unless Close published it
	w, err := dir.NewWriter(ctx, filepath.Base(*out))
	if err != nil {
		return err
	}
	if err := sample.Generate(ctx, w, *rows, *seed); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "shardprep: wrote %d rows to %s\n", *rows, *out)
	return nil
}
