package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shardprep/shardprep/pipeline"
	"github.com/shardprep/shardprep/storage"
)

// openLocation registers the storage flags on fs, parses args, which
// must name one location (as locationWord calls it),
// and opens its bucket, for writing if write says so once the flags are
// parsed.
func openLocation(ctx context.Context, fs *flag.FlagSet, args []string, env func(string) string, stderr io.Writer, write func() bool) (*storage.Bucket, string, error) {
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, "", err
	}
	if fs.NArg() != 1 {
		return nil, "", usagef("%s needs exactly one %s", fs.Name(), locationWord[fs.Name()])
	}
	root := storage.Root(fs.Arg(0))
	if root == "" {
		return nil, "", usagef("%s: %s is not a local folder or s3://bucket/prefix", fs.Name(), fs.Arg(0))
	}
	if err := sf.check(); err != nil {
		return nil, "", err
	}
	st := newStores(sf, env, newLogger(stderr, "auto", env))
	b, err := st.Bucket(ctx, root, write())
	return b, root, err
}

// runReport (re)builds the report of an output from its manifest.
func runReport(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", reportUsage, stderr)
	to := fs.String("o", "", "write the report to `FILE` instead of OUTPUT's _shardprep/report.html")
	b, root, err := openLocation(ctx, fs, args, env, stderr, func() bool { return *to == "" })
	if err != nil {
		return err
	}
	html, err := pipeline.RebuildReport(ctx, b)
	if err != nil {
		return fmt.Errorf("%s: %w", displayRoot(root), err)
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

// writeFailedReport writes the report of a job that failed, as far as it
// got, and prints where: in a local output under the report's usual name
// (the only object a failed job leaves there; a later job replaces it), and
// for an S3 output beside the system's temporary files. p's claim must
// still be held.
func writeFailedReport(ctx context.Context, c *pipeline.Coordinator, cause error, p *prepared, stdout io.Writer) {
	m := c.Manifest()
	var html bytes.Buffer
	if pipeline.WriteReport(&html, m, cause.Error()) != nil {
		return
	}
	if p.local {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if p.sink.Put(ctx, pipeline.ReportKey, html.Bytes()) == nil {
			fmt.Fprintf(stdout, "shardprep: the failed job's report: %s\n", p.sink.URL(pipeline.ReportKey))
			return
		}
	}
	name := "shardprep-report-" + m.RunID + ".html"
	if m.Job != "" {
		name = m.Job + "-" + m.RunID + "-report.html"
	}
	path := filepath.Join(os.TempDir(), strings.ReplaceAll(name, "/", "_"))
	if os.WriteFile(path, html.Bytes(), 0o644) == nil {
		fmt.Fprintf(stdout, "shardprep: the failed job's report: %s\n", path)
	}
}

// serveMetrics serves c's metrics on addr until the returned stop is
// called.
func serveMetrics(c *pipeline.Coordinator, addr string, stdout io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", pipeline.MetricsHandler(c))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	fmt.Fprintf(stdout, "shardprep: metrics on http://%s/metrics\n", ln.Addr())
	return func() { srv.Close(); <-done }, nil
}
