package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// cleanConfig is the clean command's settings.
type cleanConfig struct {
	output    string
	yes       bool
	logFormat logFormat
	store     storeFlags
}

func parseClean(args []string, stderr io.Writer) (*cleanConfig, error) {
	var cfg cleanConfig
	fs := newFlagSet("clean", cleanUsage, stderr)
	fs.BoolVar(&cfg.yes, "yes", false, "remove what it finds (default: only print it)")
	logFormatVar(fs, &cfg.logFormat, "log `FORMAT`: text, json, or auto (json without a terminal)")
	cfg.store.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		return nil, usagef("clean needs exactly one OUTPUT")
	}
	cfg.output = fs.Arg(0)
	return &cfg, cfg.store.check()
}

// runClean finds an uncommitted job's leftovers in the output of cfg,
// prints them and, with --yes, removes them.
func runClean(ctx context.Context, cfg *cleanConfig, env func(string) string, stdout, stderr io.Writer) error {
	root := storage.Root(cfg.output)
	if root == "" {
		return usagef("clean: %s is not a local folder or s3://bucket/prefix", cfg.output)
	}
	log := newLogger(stderr, cfg.logFormat, env)
	out, err := newStores(cfg.store, env, log).Bucket(ctx, root, true)
	if err != nil {
		return fmt.Errorf("output %s: %w", cfg.output, err)
	}
	l, err := pipeline.FindLeftovers(ctx, out, &pipeline.ClaimOptions{Name: cfg.output, Log: log})
	if err != nil {
		return err
	}
	name := displayRoot(root)
	printLeftovers(stdout, l, name)
	if !cfg.yes {
		fmt.Fprintf(stdout, "shardprep: dry run, nothing removed; run again with --yes to remove these\n")
		return nil
	}
	return removeLeftovers(ctx, out, l, name, stdout)
}

// printLeftovers says what clean finds.
func printLeftovers(w io.Writer, l *pipeline.Leftovers, name string) {
	if l.Claim != nil {
		fmt.Fprintf(w, "shardprep: %s is claimed by %s\n", name, l.Claim)
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
	fmt.Fprintf(w, "  staged and unfinished writes of %s to abort\n", plural(len(l.Keys), "key"))
	if len(l.Foreign) > 0 {
		fmt.Fprintf(w, "  left alone, not shardprep's: %s\n", plural(len(l.Foreign), "object"))
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
	fmt.Fprintf(w, "shardprep: removed %s, %s, %s and %s from %s\n", plural(len(l.Objects), "object"),
		plural(stages, "staged write"), plural(uploads, "open upload"), plural(temps, "temporary file"), name)
	return nil
}
