// Package pipeline runs a shardprep job: it plans byte-range splits of the
// input objects, decodes CSV lines into Arrow record batches, fits the model,
// transforms and splits rows into train/validation parts, and commits the
// output.
//
// Inputs are read through a Source and output is written through a Sink;
// both are small interfaces declared here and satisfied by the storage
// package's types, so this package never imports storage.
//
// The package has two halves. The data plane works on one split at a time:
// plan.go (the Job, its Settings and its splits), lines.go (a split's
// lines), decode.go and fastparse.go (lines to Arrow records), scan.go (a
// split's rows, the fit pass, bad-row errors), transform.go (the transform
// pass and the parts), draw.go and spark.go (the two split modes). The
// control plane runs the tasks: protocol.go (the messages and the
// Transport), http.go (the protocol over HTTP: handler and Client),
// coordinator.go (phases and leases), worker.go, commit.go (the manifest),
// status.go (progress and worker status) and run.go (a job in one process,
// and the goroutines of a coordinator's Run).
//
// output.go is the one home of the output layout and its rules: the keys
// of parts, metadata and markers, when an output counts as committed, how
// an existing output is checked and cleared before a job, which folders of
// a listing are outputs, and what a failed job removes.
//
// A Job is the fixed plan; the fitted (or given) model travels beside it,
// from the coordinator to the workers with their transform leases. Every
// goroutine the package starts is owned: Coordinator.Run runs its own
// worker, the lease expiry and the progress reports in one errgroup and
// waits for them, and a Worker waits for its heartbeat loop and its tasks
// before Run returns.
package pipeline
