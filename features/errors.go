package features

import "fmt"

// Reasons a RowError gives.
const (
	ReasonNull   = "null value"
	ReasonNaN    = "NaN"
	ReasonUnseen = "label not in the fitted model"
)

// RowErrors lists the bad rows of a record, in row order, one error per
// row: what the transform of a spec with stages returns, so that every bad
// row of a batch is known from one call. Error describes the first.
type RowErrors []*RowError

func (e RowErrors) Error() string {
	if len(e) == 0 {
		return "no bad rows"
	}
	if len(e) == 1 {
		return e[0].Error()
	}
	return fmt.Sprintf("%s (and %d more bad rows)", e[0].Error(), len(e)-1)
}

// RowError reports the first bad row of a record passed to Stats.Add or
// Model.Transform. Row is the row's index within that record (the caller
// maps it to an object and line), Column the column's name, Value the
// offending text ("" for a null, "NaN" for a NaN) and Reason one of
// ReasonNull, ReasonNaN, ReasonUnseen.
type RowError struct {
	Row    int
	Column string
	Value  string
	Reason string
	// Stage names the stage that refused the row ("stages[1]
	// (StringIndexer)"), empty for the flat form.
	Stage string
	// Dropped marks a row a stage leaves out by its own rule
	// (handleInvalid "skip"), as Spark drops it: not an error.
	Dropped bool
}

func (e *RowError) Error() string {
	if e.Stage != "" {
		return fmt.Sprintf("row %d, column %q, value %q: %s: %s", e.Row, e.Column, e.Value, e.Stage, e.Reason)
	}
	if e.Reason == ReasonNull {
		return fmt.Sprintf("row %d, column %q: %s", e.Row, e.Column, e.Reason)
	}
	return fmt.Sprintf("row %d, column %q, value %q: %s", e.Row, e.Column, e.Value, e.Reason)
}
