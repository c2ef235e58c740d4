// Package roles runs a shardprep job, from a typed config, in each role a
// process plays: alone (Process.Run, the run command), as a cluster's
// coordinator (Process.Coordinate) or worker (Process.Work), and as a
// SageMaker Processing container (Process.Container), which plays one of
// them on each of the processing job's hosts: the first host coordinates
// and works, publishing the cluster secret in the output when none is
// given; the others resolve it, wait for the secret and work.
//
// The commands of cmd/shardprep parse their flags into Job, Coordinator,
// Worker and Container; the container builds the Coordinator and Worker
// of its host itself. A role plans the job (the spec and model files, the
// inputs through package stores, the split size), claims the output
// (pipeline.ClaimOutput) and gives the claim back when it ends, shows
// progress (package progress) and prints where it writes and a summary
// to Process.Stdout; logs and progress go to Process.Stderr. A failed
// job's report is written in a local output, the one object the job
// leaves there, or beside the system's temporary files for an S3 output.
//
// Errors are one line; a mistake in the config is a cli.UsageError
// naming the flag; an interrupted job's error wraps context.Canceled.
package roles
