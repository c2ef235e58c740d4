package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/stores"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// cleanConfig is the clean command's settings.
type cleanConfig struct {
	output    string
	yes       bool
	logFormat cli.LogFormat
	store     storage.S3Config
}

func parseClean(args []string, _ func(string) string, stderr io.Writer) (*cleanConfig, error) {
	var cfg cleanConfig
	fs := cli.NewFlagSet("clean", cleanUsage, stderr)
	fs.BoolVar(&cfg.yes, "yes", false, "remove what it finds (default: only print it)")
	cli.LogFormatVar(fs, &cfg.logFormat)
	registerStore(fs, &cfg.store)
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		return nil, cli.Usagef("clean needs exactly one OUTPUT")
	}
	cfg.output = fs.Arg(0)
	return &cfg, stores.Check(cfg.store)
}

// runClean finds an uncommitted job's leftovers in the output of cfg,
// prints them and, with --yes, removes them.
func runClean(ctx context.Context, cfg *cleanConfig, env func(string) string, stdout, stderr io.Writer) error {
	root := storage.Root(cfg.output)
	if root == "" {
		return cli.Usagef("clean: %s is not a local folder or s3://bucket/prefix", cfg.output)
	}
	log := cli.NewLogger(stderr, cfg.logFormat, env)
	out, err := stores.New(cfg.store, env, log).Bucket(ctx, root, true)
	if err != nil {
		return fmt.Errorf("output %s: %w", cfg.output, err)
	}
	l, err := pipeline.FindLeftovers(ctx, out, &pipeline.ClaimOptions{Name: cfg.output, Log: log})
	if err != nil {
		return err
	}
	name := stores.Display(root)
	printLeftovers(stdout, l, name)
	if !cfg.yes {
		fmt.Fprintf(stdout, "shardprep: dry run, nothing removed; run again with --yes to remove these\n")
		return nil
	}
	return removeLeftovers(ctx, out, l, name, stdout)
}

// printLeftovers says what clean finds.
func printLeftovers(w io.Writer, l *pipeline.Leftovers, name string) {
	if l.Holder != nil {
		fmt.Fprintf(w, "shardprep: %s is claimed by %s\n", name, l.Holder)
	} else {
		fmt.Fprintf(w, "shardprep: %s holds no claim\n", name)
	}
	fmt.Fprintf(w, "  shardprep objects to remove: %d\n", len(l.Objects))
	const most = 20
	for i, k := range l.Objects {
		if i == most {
			fmt.Fprintf(w, "    ... and %d more\n", len(l.Objects)-most)
			break
		}
		fmt.Fprintf(w, "    %s\n", k)
	}
	fmt.Fprintf(w, "  staged and unfinished writes of %s to abort\n", cli.Plural(len(l.Keys), "key"))
	if len(l.Foreign) > 0 {
		fmt.Fprintf(w, "  left alone, not shardprep's: %s\n", cli.Plural(len(l.Foreign), "object"))
	}
}

// removeLeftovers removes l from out: the stages and unfinished writes of
// the job's keys first, then its objects, the claim last.
func removeLeftovers(ctx context.Context, out *storage.Bucket, l *pipeline.Leftovers, name string, w io.Writer) error {
	stages, err := out.DiscardStages(ctx, "", func(key, _ string) bool { return !l.Owns(key) })
	if err != nil {
		return fmt.Errorf("output %s: discarding staged writes: %w", name, err)
	}
	uploads, err := out.AbortUploads(ctx, l.Keys)
	if err != nil {
		return fmt.Errorf("output %s: %w", name, err)
	}
	temps, err := out.Sweep(ctx, l.Owns)
	if err != nil {
		return fmt.Errorf("output %s: removing temporary files: %w", name, err)
	}
	if err := l.Remove(ctx, out, name); err != nil {
		return err
	}
	fmt.Fprintf(w, "shardprep: removed %s, %s, %s and %s from %s\n", cli.Plural(len(l.Objects), "object"),
		cli.Plural(stages, "staged write"), cli.Plural(uploads, "open upload"), cli.Plural(temps, "temporary file"), name)
	return nil
}
