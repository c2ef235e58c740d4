// Package format lays out transformed rows in the parts of an output:
// text, csv, libsvm or parquet (features.OutputFormat).
//
// An Encoder takes the records of features.Model.Transform (a "label"
// float64 column, a "features" fixed_size_list<float64> column of the
// model's width, and optionally the source text columns that the text
// layout copies) and writes the chosen rows to an io.Writer:
//
//   - text: the label, then each slot, comma-separated, one line per row,
//     every number as Python's repr (features.AppendRows);
//   - csv: the same lines after a header row naming the label column and
//     each slot (quoted as RFC 4180 says when a name needs it);
//   - libsvm: "label idx:value ..." per row, indices 1-based, slots equal
//     to zero (either sign) left out, numbers as Python's repr;
//   - parquet: one Parquet file, written with Arrow's Parquet writer
//     (parquet/file, the column writers under pqarrow, whose Arrow schema
//     layer would link Arrow Flight and gRPC into the binary),
//     snappy-compressed, without dictionaries: a required double column
//     named like the header for the label and for each slot, in row
//     groups of about Options.RowGroupBytes of values; the footer is
//     written by Close.
//
// Column names are the label column's name and the slot names, with
// invalid UTF-8 replaced (see Columns); parquet refuses two columns of one
// name. An Encoder buffers what it writes and is not safe for concurrent
// use; Close must be called, once, for the part to be complete, and a part
// whose Encode or Close failed is incomplete and must be discarded.
// ParquetLines reads a parquet part back as text lines.
//
// Nothing here starts goroutines; the only I/O is on the writers and
// readers the caller passes in.
package format
