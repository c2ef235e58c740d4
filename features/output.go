package features

import (
	"fmt"
	"strings"
)

// OutputFormat is how a job lays out its parts.
type OutputFormat string

// The output formats.
const (
	// FormatText is one line per row: the label, then each feature
	// value, comma-separated, as AppendRows writes them.
	FormatText OutputFormat = "text"
	// FormatCSV is FormatText's lines after a header row naming the
	// label and each slot.
	FormatCSV OutputFormat = "csv"
	// FormatLibSVM is "label idx:value ..." per row: 1-based slot
	// indices, zero values left out.
	FormatLibSVM OutputFormat = "libsvm"
	// FormatParquet is one Parquet file per part: a double column for
	// the label and one per slot.
	FormatParquet OutputFormat = "parquet"
)

// OutputFormats are the output formats, the default first.
var OutputFormats = []OutputFormat{FormatText, FormatCSV, FormatLibSVM, FormatParquet}

// ParseOutputFormat validates an output format name; "" means FormatText.
func ParseOutputFormat(s string) (OutputFormat, error) {
	if s == "" {
		return FormatText, nil
	}
	for _, f := range OutputFormats {
		if OutputFormat(s) == f {
			return f, nil
		}
	}
	names := make([]string, len(OutputFormats))
	for i, f := range OutputFormats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown output format %q (want %s)", s, strings.Join(names, ", "))
}
