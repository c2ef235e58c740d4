// Package features holds the pure part of shardprep: the declarative
// pipeline spec, fit statistics with an associative merge, the fitted model
// (string indexing ordered by frequency), the transform (index -> one-hot
// with dropLast -> assemble) over Apache Arrow record batches, and the text
// encoding of transformed rows with Python's repr(float) layout.
//
// Nothing here does I/O or starts goroutines. Records passed in are borrowed:
// functions never retain or release them. Records returned are owned by the
// caller, who must Release them.
package features
