package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/stores"
	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/format"
	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// noParts is head's error for a location without part files, infos
// its listing: an output root names its split folders.
func noParts(location string, infos []storage.ObjectInfo) error {
	keys := make([]string, len(infos))
	for i, o := range infos {
		keys[i] = o.Key
	}
	dirs := pipeline.SplitFolders(keys)
	if len(dirs) == 0 {
		return fmt.Errorf("%s: no part files there", location)
	}
	base := strings.TrimSuffix(location, "/") + "/"
	return fmt.Errorf("%s: no part files there; it is an output with the split folders %s: did you mean %s%s?",
		location, strings.Join(dirs, ", "), base, dirs[0])
}

func runHead(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("head", headUsage, stderr)
	n := fs.Int("n", 5, "rows to print")
	b, _, err := openLocation(ctx, fs, args, env, stderr, func() bool { return false })
	if err != nil {
		return err
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		return err
	}
	var first *storage.ObjectInfo
	for i := range infos {
		if strings.HasPrefix(infos[i].Key, "part-") {
			first = &infos[i]
			break
		}
	}
	if first == nil {
		return noParts(fs.Arg(0), infos)
	}
	if strings.HasSuffix(first.Key, format.Extension(features.FormatParquet)) {
		// A parquet part's rows, printed as the text format's lines.
		if err := format.ParquetLines(ctx, stores.ReaderAt(ctx, b, *first), *n, stdout); err != nil {
			return fmt.Errorf("%s: %w", b.URL(first.Key), err)
		}
		return nil
	}
	rc, err := b.NewRangeReader(ctx, first.Key, first.ETag, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for i := 0; i < *n && sc.Scan(); i++ {
		fmt.Fprintln(stdout, sc.Text())
	}
	return sc.Err()
}
