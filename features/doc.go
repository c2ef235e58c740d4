// Package features holds the pure part of shardprep: the declarative
// pipeline spec, fit statistics with an associative merge, the fitted model
// (string indexing ordered by frequency), the transform (index -> one-hot
// with dropLast -> assemble) over Apache Arrow record batches, and the text
// encoding of transformed rows with Python's repr(float) layout.
//
// The flow is: ParseSpec (which validates the spec: declared columns and
// types, distinct feature columns, a double label, split names that are
// folder names no reader hides, i.e. not starting with '_' or '.', and
// positive weights); Spec.Schema (or Spec.FitSchema for the fit pass)
// types the decoded batches; NewStats, Stats.Add per batch and Stats.Merge
// across workers (Stats travel as JSON between processes); Stats.Model fits
// the Model (itself JSON, reusable with ReadModel and Model.Check);
// Model.Transform turns a batch into label and feature vectors; AppendRows
// writes chosen rows as text lines. NewColumnStats, ColumnStats.Add and
// ColumnStats.Merge describe the numbers of the transformed rows (count,
// missing, min, max, exact sums, a histogram on a fixed grid) exactly, so
// that the merged stats are the same bytes for any cut of the rows.
//
// A spec may instead list Spark ML stages (Spec.Stages: StringIndexer,
// OneHotEncoder, VectorAssembler, Imputer, StandardScaler, MinMaxScaler,
// MaxAbsScaler, Bucketizer, Binarizer, with PySpark's params). ParseSpec
// checks them as a graph of column names and assigns each stage that
// learns from the data a fit pass: one more than the deepest pass its
// inputs (or an earlier stage that drops rows) need. NewStats gives the
// statistics of the first pass; a Model whose Passes are not all done is
// partial, and its NextStats those of the next pass, whose Add runs the
// stages fitted so far first. Values flow between stages as Arrow arrays
// (float64, fixed_size_list<float64> vectors, utf8), with nulls; the
// transform's result has the same shape as the flat form's. Its bad
// rows, every one of a batch, come back as RowErrors (those a stage drops
// by handleInvalid "skip" marked Dropped).
//
// Bad data is reported as a *RowError naming the first bad row of the batch
// (its index in the batch), the column, the offending value and the reason;
// malformed specs, models and stats are plain errors naming the bad field.
//
// Nothing here does I/O or starts goroutines. A Model is immutable and safe
// for concurrent use; a Stats is not (give each goroutine its own and merge).
// Records passed in are borrowed: functions never retain or release them.
// Records returned are owned by the caller, who must Release them.
package features
