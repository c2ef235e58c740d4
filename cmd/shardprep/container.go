package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shardprep/shardprep/container"
	"github.com/shardprep/shardprep/storage"
)

const containerUsage = `Usage: shardprep container [flags] [job arguments]

The entrypoint of the shardprep image on SageMaker Processing. It reads
/opt/ml/config/resourceconfig.json and processingjobconfig.json (under
--sagemaker-root), then runs the job: in-process on one instance; on several,
the first host in "hosts" is the coordinator (and a worker), the others are
workers.

Job arguments are run's flags, or the PySpark script's own arguments, which
are translated:
  --account_id A                                 -> --account-id A (and --credentials grants)
  --s3_input_bucket B  --s3_input_key_prefix P   -> --input s3://B/P/
  --s3_output_bucket B --s3_output_key_prefix P  -> --output s3://B/P/
Without --input/--output, the job's first ProcessingInput/ProcessingOutput
local paths (under /opt/ml/processing/) are used.

Cluster secret: SHARDPREP_CLUSTER_SECRET if set; otherwise the coordinator
writes a random secret to _shardprep/cluster-secret-<job name> under the S3
output (readable only with the job's own output credentials) and the workers
read it there; it is deleted when the job ends.

On failure the reason is written to /opt/ml/output/message and the exit
status is non-zero; SIGTERM stops the job, aborts uploads and commits nothing.

Flags:
`

// clusterSecretKey is where the coordinator publishes the cluster secret
// under the output, for the workers of the job.
func clusterSecretKey(job string) string { return "_shardprep/cluster-secret-" + job }

func runContainer(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	var f jobFlags
	fs := newFlagSet("container", containerUsage, stderr)
	f.register(fs)
	root := fs.String("sagemaker-root", "/", "`DIR` holding opt/ml/config (a fake tree in tests)")
	host := fs.String("host", "", "this instance's host name (default: current_host from resourceconfig.json)")
	port := fs.Int("cluster-port", 7070, "TCP port of the coordinator on the first host")
	var hostAddrs stringList
	fs.Var(&hostAddrs, "host-address", "`NAME=ADDR` address of a host without asking DNS (repeatable; for tests)")
	resolveTimeout := fs.Duration("resolve-timeout", 5*time.Minute, "how long to wait for the coordinator's host name to resolve")
	secretTimeout := fs.Duration("secret-timeout", 5*time.Minute, "how long a worker waits for the coordinator's cluster secret")
	lease := fs.Duration("lease", 30*time.Second, "a worker silent this long loses its tasks")

	fail := func(err error) error {
		if werr := container.WriteFailure(*root, err.Error()); werr != nil {
			fmt.Fprintf(stderr, "shardprep: could not write the failure message: %v\n", werr)
		}
		return err
	}
	sm, err := container.Load(os.DirFS(*rootFromArgs(args)), env)
	if err != nil {
		return fail(fmt.Errorf("reading the SageMaker Processing configuration: %w", err))
	}
	if len(args) == 0 {
		args = sm.Arguments
	}
	translated, err := container.TranslateArgs(args)
	if err != nil {
		return fail(&usageError{err.Error()})
	}
	if err := parseFlags(fs, translated); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fail(err)
	}
	if *host != "" {
		sm.CurrentHost = *host
		sm.IsCoordinator = *host == sm.Coordinator
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.store.accountID != "" && !set["credentials"] {
		f.store.credentials = "grants" // the PySpark job used S3 Access Grants
	}
	if len(f.inputs) == 0 {
		if ch, ok := firstLocal(sm.Inputs); ok {
			f.inputs = append(f.inputs, ch)
		}
	}
	if f.output == "" {
		if ch, ok := firstLocal(sm.Outputs); ok {
			f.output = ch
		}
	}
	if len(f.inputs) == 0 || f.output == "" {
		return fail(usagef("container: no input or output: pass --input/--output (or the script's --s3_* arguments) or give the job a ProcessingInput and ProcessingOutput"))
	}
	if f.jobName == "" {
		f.jobName = sm.JobName
	}
	if f.store.region == "" {
		f.store.region = sm.Region
	}
	f.logFormat = "json"
	log := newLogger(stderr, f.logFormat, env).With("host", sm.CurrentHost)
	log.Info("container starting", "job", sm.JobName, "hosts", len(sm.Hosts), "coordinator", sm.Coordinator, "is_coordinator", sm.IsCoordinator)

	if len(sm.Hosts) <= 1 {
		return failOr(fail, runJob(ctx, jobArgs(&f, fs), env, stdout, stderr))
	}

	secret := env("SHARDPREP_CLUSTER_SECRET")
	outRoot := normalizeRoot(f.output)
	if secret == "" && !strings.HasPrefix(outRoot, "s3://") {
		return fail(errors.New("container: a job on several instances needs an s3:// output (to share the cluster secret) or SHARDPREP_CLUSTER_SECRET"))
	}
	if err := f.store.check(); err != nil {
		return fail(err)
	}
	f.store.jobName = f.jobName
	st := newStores(f.store, env, log)
	withSecret := func(s string) func(string) string {
		return func(k string) string {
			if k == "SHARDPREP_CLUSTER_SECRET" {
				return s
			}
			return env(k)
		}
	}
	if sm.IsCoordinator {
		var out *storage.Bucket
		if secret == "" {
			b := make([]byte, 32)
			rand.Read(b)
			secret = hex.EncodeToString(b)
			if out, err = st.bucket(ctx, outRoot, true); err != nil {
				return fail(err)
			}
			if err := putSecret(ctx, out, clusterSecretKey(f.jobName), secret); err != nil {
				return fail(fmt.Errorf("publishing the cluster secret: %w", err))
			}
		}
		cargs := append([]string{"--listen", net.JoinHostPort("0.0.0.0", strconv.Itoa(*port)), "--lease", lease.String()}, jobArgs(&f, fs)...)
		err := runCoordinator(ctx, cargs, withSecret(secret), stdout, stderr)
		if out != nil {
			out.Delete(context.WithoutCancel(ctx), clusterSecretKey(f.jobName))
		}
		return failOr(fail, err)
	}

	// A worker: find the coordinator, get the secret, join.
	lookup := hostLookup(hostAddrs)
	addrs, err := container.ResolveHost(ctx, sm.Coordinator, lookup, *resolveTimeout)
	if err != nil {
		return fail(err)
	}
	if secret == "" {
		out, err := st.bucket(ctx, outRoot, true)
		if err != nil {
			return fail(err)
		}
		if secret, err = waitSecret(ctx, out, clusterSecretKey(f.jobName), *secretTimeout); err != nil {
			return fail(err)
		}
	}
	wargs := append([]string{"--coordinator", "http://" + net.JoinHostPort(addrs[0], strconv.Itoa(*port)),
		"--name", sm.CurrentHost, "--workers", strconv.Itoa(f.workers), "--log-format", "json"}, storeArgs(fs)...)
	return failOr(fail, runWorker(ctx, wargs, withSecret(secret), stdout, stderr))
}

// rootFromArgs finds --sagemaker-root before the flags are parsed (the
// platform files say how to translate the rest).
func rootFromArgs(args []string) *string {
	root := "/"
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, "sagemaker-root="); ok {
			root = v
		} else if a == "sagemaker-root" && i+1 < len(args) {
			root = args[i+1]
		}
	}
	return &root
}

func failOr(fail func(error) error, err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fail(err)
}

func firstLocal(cs []container.Channel) (string, bool) {
	for _, c := range cs {
		if c.LocalPath != "" {
			return c.LocalPath, true
		}
	}
	return "", false
}

// containerOnly are the container's own flags, not passed on to the role.
var containerOnly = map[string]bool{"sagemaker-root": true, "host": true, "cluster-port": true,
	"host-address": true, "resolve-timeout": true, "secret-timeout": true, "lease": true}

// jobArgs rebuilds run's flags from the parsed ones.
func jobArgs(f *jobFlags, fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(fl *flag.Flag) {
		if containerOnly[fl.Name] || fl.Name == "input" {
			return
		}
		if v := fl.Value.String(); v != fl.DefValue || fl.Name == "output" || fl.Name == "job-name" || fl.Name == "credentials" {
			out = append(out, "--"+fl.Name+"="+v)
		}
	})
	for _, in := range f.inputs {
		out = append(out, "--input="+in)
	}
	return out
}

// storeArgs rebuilds the storage flags a worker needs.
func storeArgs(fs *flag.FlagSet) []string {
	var sf storeFlags
	names := flag.NewFlagSet("", flag.ContinueOnError)
	sf.register(names)
	var out []string
	names.VisitAll(func(n *flag.Flag) {
		fl := fs.Lookup(n.Name)
		if fl != nil && (fl.Value.String() != fl.DefValue || n.Name == "credentials") {
			out = append(out, "--"+fl.Name+"="+fl.Value.String())
		}
	})
	return out
}

func hostLookup(overrides stringList) func(context.Context, string) ([]string, error) {
	m := map[string]string{}
	for _, o := range overrides {
		if name, addr, ok := strings.Cut(o, "="); ok {
			m[name] = addr
		}
	}
	return func(ctx context.Context, host string) ([]string, error) {
		if a, ok := m[host]; ok {
			return []string{a}, nil
		}
		return net.DefaultResolver.LookupHost(ctx, host)
	}
}

func putSecret(ctx context.Context, b *storage.Bucket, key, secret string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(ctx, key)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, secret); err != nil {
		return err
	}
	return w.Close()
}

func waitSecret(ctx context.Context, b *storage.Bucket, key string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		rc, err := b.NewRangeReader(ctx, key, "", 0, -1)
		if err == nil {
			data, rerr := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if rerr == nil && len(data) >= 16 {
				return string(data), nil
			}
			err = rerr
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("reading the cluster secret: %w", err)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the coordinator published no cluster secret at %s within %s", b.URL(key), timeout)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
