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
// control plane runs the tasks: protocol.go (the messages, their checks
// and the transport), http.go (the protocol over HTTP: the signed
// envelope, handler, server and client), coordinator.go (phases, leases
// and reports), speculate.go (a fit on a sample of the splits, which the
// transform verifies by counting labels), worker.go, commit.go (publishing, the manifest, cleanup),
// status.go (progress and worker status) and run.go (a job in one process,
// and the goroutines of a coordinator's Run).
//
// output.go is the one home of the output layout and its rules: the keys
// of parts, metadata and markers, when an output counts as committed, how
// an existing output is checked and cleared before a job, which folders of
// a listing are outputs, and what a failed job removes.
//
// The control plane fences the output: a task is run under a lease (an
// id the coordinator draws, and an attempt number), a transform attempt
// stages its parts in the Sink under the stage "<run id>-<lease id>", and
// the coordinator accepts one report per task, from the holder of its live
// lease, and publishes only the accepted attempts' parts at commit, after
// which it checks their sizes and writes the _SUCCESS markers. It discards
// every other stage of its run, and leaves other runs' alone. Over HTTP,
// requests and answers are signed, name the job's run id and carry a nonce
// (see http.go).
//
// What a job leaves beside its parts: record.go (the manifest's version
// 2 fields: every attempt at every task, the exact column statistics that
// transform tasks report and the coordinator merges, rejected rows by
// reason), report.go, report_time.go and report.html.tmpl (the HTML
// report the commit writes from the manifest: no script, nothing fetched,
// a bounded number of shapes for any number of splits) and metrics.go
// (GET /metrics in the Prometheus text format: counts only, no names or
// secrets, so served without a signature).
//
// A Job is the fixed plan; the fitted (or given) model travels beside it,
// from the coordinator to the workers with their transform leases. Every
// goroutine the package starts is owned: Coordinator.Run runs its own
// worker, the lease expiry and the progress reports in one errgroup and
// waits for them, and a Worker waits for its heartbeat loop and its tasks
// before Run returns.
package pipeline
