package features

import "fmt"

// Reasons a RowError gives.
const (
	ReasonNull   = "null value"
	ReasonNaN    = "NaN"
	ReasonUnseen = "label not in the fitted model"
)

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
}

func (e *RowError) Error() string {
	if e.Reason == ReasonNull {
		return fmt.Sprintf("row %d, column %q: %s", e.Row, e.Column, e.Reason)
	}
	return fmt.Sprintf("row %d, column %q, value %q: %s", e.Row, e.Column, e.Value, e.Reason)
}
