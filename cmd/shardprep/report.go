package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/stores"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// openLocation registers the storage flags on fs, parses args, which
// must name one location (as locationWord calls it),
// and opens its bucket, for writing if write says so once the flags are
// parsed.
func openLocation(ctx context.Context, fs *flag.FlagSet, args []string, env func(string) string, stderr io.Writer, write func() bool) (*storage.Bucket, string, error) {
	var sf storage.S3Config
	registerStore(fs, &sf)
	if err := cli.Parse(fs, args); err != nil {
		return nil, "", err
	}
	if fs.NArg() != 1 {
		return nil, "", cli.Usagef("%s needs exactly one %s", fs.Name(), locationWord[fs.Name()])
	}
	root := storage.Root(fs.Arg(0))
	if root == "" {
		return nil, "", cli.Usagef("%s: %s is not a local folder or s3://bucket/prefix", fs.Name(), fs.Arg(0))
	}
	if err := stores.Check(sf); err != nil {
		return nil, "", err
	}
	st := stores.New(sf, env, cli.NewLogger(stderr, "auto", env))
	b, err := st.Bucket(ctx, root, write())
	return b, root, err
}

// runReport (re)builds the report of an output from its manifest.
func runReport(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("report", reportUsage, stderr)
	to := fs.String("o", "", "write the report to `FILE` instead of OUTPUT's _shardprep/report.html")
	b, root, err := openLocation(ctx, fs, args, env, stderr, func() bool { return *to == "" })
	if err != nil {
		return err
	}
	html, err := pipeline.RebuildReport(ctx, b)
	if err != nil {
		return fmt.Errorf("%s: %w", stores.Display(root), err)
	}
	where := *to
	if where == "" {
		if err := b.Put(ctx, pipeline.ReportKey, html); err != nil {
			return err
		}
		where = b.URL(pipeline.ReportKey)
	} else if err := os.WriteFile(where, html, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "shardprep: wrote %s\n", where)
	return nil
}

// locationWord names the location argument of the commands that take one.
var locationWord = map[string]string{"head": "LOCATION", "report": "OUTPUT"}
