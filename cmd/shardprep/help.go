package main

import _ "embed"

// Each command's help text, printed as it is before the command's flags
// (newFlagSet); help.txt is the top-level one. The golden transcripts in
// testdata/help pin what they print.
var (
	//go:embed help/help.txt
	topUsage string
	//go:embed help/run.txt
	runUsage string
	//go:embed help/coordinator.txt
	coordinatorUsage string
	//go:embed help/worker.txt
	workerUsage string
	//go:embed help/container.txt
	containerUsage string
	//go:embed help/submit.txt
	submitUsage string
	//go:embed help/head.txt
	headUsage string
	//go:embed help/gen.txt
	genUsage string
	//go:embed help/clean.txt
	cleanUsage string
	//go:embed help/report.txt
	reportUsage string
	//go:embed help/spec.txt
	specUsage string
)
