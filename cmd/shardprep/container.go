package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/shardprep/shardprep/cmd/internal/cli"
	"github.com/shardprep/shardprep/cmd/internal/roles"
	"github.com/shardprep/shardprep/container"
)

// containerFlags are the container's command line: run's flags and its
// own, filling a roles.Container.
type containerFlags struct {
	roles.Container
	fs        *flag.FlagSet
	rootFlag  string // --sagemaker-root as parsed: must be Root
	host      string
	hostAddrs cli.StringList
}

// runContainer runs the container command. Every failure is also written,
// as one line of at most 1 KB, to opt/ml/output/message under
// --sagemaker-root, where SageMaker reads the job's failure reason.
func runContainer(ctx context.Context, args []string, p *roles.Process) error {
	root := container.RootFromArgs(args)
	log := cli.NewLogger(p.Stderr, "auto", p.Env)
	fail := func(err error) error {
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return err
		}
		log.Error("container failed", "error", err.Error())
		if werr := container.WriteFailure(root, err.Error()); werr != nil {
			log.Error("could not write the failure message", "error", werr.Error())
		}
		return cli.Logged(err)
	}
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		// Help needs no platform files.
		c := &containerFlags{}
		c.register(p.Stderr)
		c.fs.Usage()
		return flag.ErrHelp
	}
	sm, err := container.Load(os.DirFS(root), p.Env)
	if err != nil {
		return fail(fmt.Errorf("reading the SageMaker Processing configuration: %w", err))
	}
	c, err := parseContainerJob(sm, root, args, p.Stderr)
	if err != nil {
		return fail(err)
	}
	log = cli.NewLogger(p.Stderr, c.LogFormat, p.Env).With("host", sm.CurrentHost)
	return fail(p.Container(ctx, c, log))
}

// register makes the container's flag set: run's flags and its own
// (container.HasJobArgs tells them apart).
func (c *containerFlags) register(stderr io.Writer) {
	c.fs = cli.NewFlagSet("container", containerUsage, stderr)
	registerJob(c.fs, &c.Job)
	c.fs.StringVar(&c.rootFlag, "sagemaker-root", "/", "`DIR` holding opt/ml (a fake tree in tests); must be given on the command line")
	c.fs.StringVar(&c.host, "host", "", "this instance's host name (default: current_host from resourceconfig.json)")
	c.fs.IntVar(&c.Port, "cluster-port", 7070, "TCP port of the coordinator on the first host")
	c.fs.StringVar(&c.Listen, "listen", "0.0.0.0", "interface `IP` the coordinator listens on, with --cluster-port; 0.0.0.0 is every interface, as the other instances connect over the job's network")
	c.fs.Var(&c.hostAddrs, "host-address", "`NAME=ADDR` address of a host without asking DNS (repeatable; for tests)")
	c.fs.DurationVar(&c.ResolveTimeout, "resolve-timeout", 5*time.Minute, "how long a worker waits for the coordinator's host name to resolve")
	c.fs.DurationVar(&c.SecretTimeout, "secret-timeout", 5*time.Minute, "how long a worker waits for the coordinator's cluster secret")
	c.fs.DurationVar(&c.Lease, "lease", roles.DefaultLease, "a worker silent this long loses its tasks")
}

// parseContainerJob is the container's reading of its arguments for the
// processing job sm, with root as --sagemaker-root: it parses them,
// completes the run from the job and checks everything that can be
// checked before the run reads any data (roles.Container.Complete). It reads no platform file (only
// the spec, to learn its splits, when the job's ProcessingOutputs decide
// the output), so "shardprep submit" runs it on the job that its request
// describes, to refuse before the job starts what the container would
// refuse after.
func parseContainerJob(sm *container.Job, root string, args []string, stderr io.Writer) (*roles.Container, error) {
	c := &containerFlags{Container: roles.Container{SM: sm, Root: root}}
	if err := c.parse(args, stderr); err != nil {
		return nil, err
	}
	c.fs.Visit(func(fl *flag.Flag) { c.CredentialsGiven = c.CredentialsGiven || fl.Name == "credentials" })
	if err := c.Complete(); err != nil {
		return nil, err
	}
	return &c.Container, nil
}

// parse parses args, followed by the job's ContainerArguments when args
// hold only the container's own flags, and checks the container's own
// flags.
func (c *containerFlags) parse(args []string, stderr io.Writer) error {
	if !container.HasJobArgs(args) {
		args = append(slices.Clip(args), c.SM.Arguments...)
	}
	translated, err := container.TranslateArgs(args)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	c.register(stderr)
	if err := cli.Parse(c.fs, translated); err != nil {
		return err
	}
	if c.rootFlag != c.Root {
		return cli.Usagef("--sagemaker-root must be given on the command line, not in the job's ContainerArguments")
	}
	if c.Port < 1 || c.Port > 65535 {
		return cli.Usagef("--cluster-port %d: not a TCP port", c.Port)
	}
	if net.ParseIP(c.Listen) == nil {
		return cli.Usagef("--listen %q: want an IP address of this host (0.0.0.0 for every interface), the port being --cluster-port", c.Listen)
	}
	if c.Lookup, err = container.HostLookup(c.hostAddrs); err != nil {
		return cli.Usagef("%v", err)
	}
	if c.host != "" {
		if err := c.SM.SetHost(c.host); err != nil {
			return cli.Usagef("%v", err)
		}
	}
	c.Inputs = append(c.Inputs, c.fs.Args()...)
	return nil
}
