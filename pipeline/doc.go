// Package pipeline runs a shardprep job: it plans byte-range splits of the
// input objects, decodes CSV lines into Arrow record batches, fits the model,
// transforms and splits rows into train/validation parts, and commits the
// output. It is the only package that starts goroutines.
//
// Inputs are read through a Source and output is written through a Sink; both
// are small interfaces declared here and satisfied by the storage package's
// types, so this package never imports storage.
package pipeline
