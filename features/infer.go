package features

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// InferOptions configure InferSpec; nil means the defaults.
type InferOptions struct {
	// Header says the first row names the columns; without it they are
	// named c0, c1, ...
	Header bool
	// Rows is how many data rows are sampled (default 1000).
	Rows int
}

// Inferred is the draft spec InferSpec makes of a sample.
type Inferred struct {
	// Spec is the draft, as JSON in the stages form, indented, ending in
	// a newline.
	Spec []byte
	// Notes say what the user should check: columns with empty (null)
	// values in the sample, the column chosen as the label.
	Notes []string
	// Rows is the number of data rows sampled.
	Rows int
}

// InferSpec reads up to opts.Rows data rows of CSV from r and drafts a
// spec for them: a column is "double" when every non-empty sampled value
// parses as a number (as Spark's CSV reader parses doubles: spaces around
// it, NaN and infinities allowed), else "string"; string columns get a
// StringIndexer (c -> c_idx; handleInvalid "keep" when one had empty
// values) and a OneHotEncoder (c_idx -> c_vec), double feature columns
// with empty (null) values an Imputer (c -> c_imp, the mean), and a
// VectorAssembler gathers the one-hot vectors and the double columns into
// "features", except the last double column, which is the label; the
// splits are train 0.8 and validation 0.2, and the output is text. An
// empty sample, rows of different lengths, a header that names a column
// twice or not at all, and a sample without a double column are errors.
func InferSpec(r io.Reader, opts *InferOptions) (*Inferred, error) {
	o := InferOptions{Rows: 1000}
	if opts != nil {
		o = *opts
		if o.Rows <= 0 {
			o.Rows = 1000
		}
	}
	names, cols, n, err := sampleColumns(r, &o)
	if err != nil {
		return nil, err
	}
	return draft(names, cols, n, o.Header)
}

// sampledColumn is what the sample says of one column.
type sampledColumn struct {
	empty    int  // values that are empty (null)
	values   int  // values that are not
	notFloat bool // a value is not a number
}

// sampleColumns reads the header (if any) and up to o.Rows rows of r.
func sampleColumns(r io.Reader, o *InferOptions) (names []string, cols []sampledColumn, rows int, err error) {
	cr := csv.NewReader(skipBOM(r))
	cr.ReuseRecord = true
	line := func() int { l, _ := cr.FieldPos(0); return l }
	for rows < o.Rows {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("sample: %w", err)
		}
		if names == nil {
			if names, err = columnNames(rec, o.Header, line()); err != nil {
				return nil, nil, 0, err
			}
			cols = make([]sampledColumn, len(names))
			if o.Header {
				continue
			}
		}
		for i, v := range rec {
			c := &cols[i]
			if v == "" {
				c.empty++
				continue
			}
			c.values++
			c.notFloat = c.notFloat || !isDouble(v)
		}
		rows++
	}
	if rows == 0 {
		return nil, nil, 0, errors.New("sample: no data rows")
	}
	return names, cols, rows, nil
}

// skipBOM leaves out a UTF-8 byte order mark at the start of r.
func skipBOM(r io.Reader) io.Reader {
	var head [3]byte
	n, _ := io.ReadFull(r, head[:])
	if n == 3 && bytes.Equal(head[:], []byte("\xef\xbb\xbf")) {
		return r
	}
	return io.MultiReader(bytes.NewReader(head[:n]), r)
}

// columnNames names the columns of the first row rec, found at line: its
// values with header, else c0, c1, ...
func columnNames(rec []string, header bool, line int) ([]string, error) {
	names := make([]string, len(rec))
	seen := map[string]bool{}
	for i, v := range rec {
		if !header {
			names[i] = "c" + strconv.Itoa(i)
			continue
		}
		switch {
		case v == "":
			return nil, fmt.Errorf("sample: line %d: the header names no column %d", line, i+1)
		case strings.HasPrefix(v, ReservedPrefix):
			return nil, fmt.Errorf("sample: line %d: header column %d %q: names starting with %q are reserved", line, i+1, v, ReservedPrefix)
		case seen[v]:
			return nil, fmt.Errorf("sample: line %d: the header names column %q twice", line, v)
		}
		seen[v] = true
		names[i] = v
	}
	return names, nil
}

// isDouble reports whether v reads as a double, as the job will read it
// (SparkDouble).
func isDouble(v string) bool {
	_, err := SparkDouble([]byte(v))
	return err == nil
}

// draftStage is one stage of a drafted spec, its params as PySpark names
// them.
type draftStage struct {
	Stage         string   `json:"stage"`
	InputCols     []string `json:"inputCols"`
	OutputCols    []string `json:"outputCols,omitempty"`
	OutputCol     string   `json:"outputCol,omitempty"`
	HandleInvalid string   `json:"handleInvalid,omitempty"`
	Strategy      string   `json:"strategy,omitempty"`
}

// draftSpec is a drafted spec in the stages form.
type draftSpec struct {
	Columns  []Column     `json:"columns"`
	Header   bool         `json:"header"`
	Stages   []draftStage `json:"stages"`
	Label    string       `json:"label"`
	Features string       `json:"features"`
	Splits   []Split      `json:"splits"`
	Output   OutputSpec   `json:"output"`
}

// draft writes the spec for columns names sampled as cols over n rows.
// Empty values make the draft cope with nulls: a StringIndexer that keeps
// them as a label of their own, an Imputer (mean) for the double columns.
func draft(names []string, cols []sampledColumn, n int, header bool) (*Inferred, error) {
	d := draftSpec{Header: header, Features: "features", Output: OutputSpec{Format: string(FormatText)},
		Splits: []Split{{Name: "train", Weight: 0.8}, {Name: "validation", Weight: 0.2}}}
	var strs, nums []string
	isString := make([]bool, len(cols))
	for i, c := range cols {
		t := ColumnDouble
		if isString[i] = c.notFloat || c.values == 0; isString[i] {
			t = ColumnString
			strs = append(strs, names[i])
		} else {
			nums = append(nums, names[i])
		}
		d.Columns = append(d.Columns, Column{Name: names[i], Type: t})
	}
	if len(nums) == 0 {
		return nil, fmt.Errorf("sample: no column is numeric in every sampled row, so none can be the label (columns %s)", strings.Join(names, ", "))
	}
	d.Label, nums = nums[len(nums)-1], nums[:len(nums)-1]
	if len(strs)+len(nums) == 0 {
		return nil, fmt.Errorf("sample: the only column, %q, is the label: there is nothing to assemble features from", d.Label)
	}
	empty := map[string]bool{}
	var notes []string
	for i, c := range cols {
		if c.empty == 0 {
			continue
		}
		empty[names[i]] = true
		what := "the Imputer replaces them with the column's mean"
		switch {
		case isString[i]:
			what = `the StringIndexer's handleInvalid "keep" indexes them as a label of their own`
		case names[i] == d.Label:
			what = "a row with an empty label is an invalid row (see --on-invalid)"
		}
		notes = append(notes, fmt.Sprintf("column %q: %d of %d sampled values are empty (null): %s", names[i], c.empty, n, what))
	}
	d.addStages(names, strs, nums, empty)
	notes = append(notes, fmt.Sprintf("label: %q, the last numeric column", d.Label))
	data, err := d.marshal()
	if err != nil {
		return nil, err
	}
	return &Inferred{Spec: data, Notes: notes, Rows: n}, nil
}

// addStages adds the stages of the string columns strs and the double
// feature columns nums, given the columns with empty values, to d; names
// are every column's, which the stages' output columns must not reuse.
func (d *draftSpec) addStages(names, strs, nums []string, empty map[string]bool) {
	taken := map[string]bool{}
	for _, name := range names {
		taken[name] = true
	}
	var assembled []string
	if len(strs) > 0 {
		var idx []string
		invalid := "error"
		for _, c := range strs {
			idx = append(idx, unique(c+"_idx", taken))
			assembled = append(assembled, unique(c+"_vec", taken))
			if empty[c] {
				invalid = "keep"
			}
		}
		d.Stages = append(d.Stages,
			draftStage{Stage: "StringIndexer", InputCols: strs, OutputCols: idx, HandleInvalid: invalid},
			draftStage{Stage: "OneHotEncoder", InputCols: idx, OutputCols: slices.Clone(assembled)})
	}
	var imputed, imputedTo []string
	for _, c := range nums {
		if empty[c] {
			imputed, c = append(imputed, c), unique(c+"_imp", taken)
			imputedTo = append(imputedTo, c)
		}
		assembled = append(assembled, c)
	}
	if len(imputed) > 0 {
		d.Stages = append(d.Stages, draftStage{Stage: "Imputer", InputCols: imputed, OutputCols: imputedTo, Strategy: "mean"})
	}
	d.Stages = append(d.Stages, draftStage{Stage: "VectorAssembler", InputCols: assembled, OutputCol: d.Features})
}

// marshal writes d as indented JSON with one column and one stage per
// line, as a spec is written by hand.
func (d *draftSpec) marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{\n")
	fields := []struct {
		name  string
		value any
		list  bool
	}{{"columns", d.Columns, true}, {"header", d.Header, false}, {"stages", d.Stages, true}, {"label", d.Label, false},
		{"features", d.Features, false}, {"splits", d.Splits, false}, {"output", d.Output, false}}
	for i, f := range fields {
		fmt.Fprintf(&b, "  %q: ", f.name)
		if f.list {
			if err := marshalLines(&b, f.value); err != nil {
				return nil, err
			}
		} else {
			v, err := json.Marshal(f.value)
			if err != nil {
				return nil, err
			}
			b.Write(v)
		}
		if i < len(fields)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// marshalLines writes the JSON array list with one element per line.
func marshalLines(b *bytes.Buffer, list any) error {
	data, err := json.Marshal(list)
	if err != nil {
		return err
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return err
	}
	b.WriteString("[")
	for i, e := range elems {
		b.WriteString("\n    ")
		b.Write(e)
		if i < len(elems)-1 {
			b.WriteByte(',')
		}
	}
	b.WriteString("\n  ]")
	return nil
}

// unique returns name, or name with "_" appended until no column is
// named so, and takes it.
func unique(name string, taken map[string]bool) string {
	for taken[name] {
		name += "_"
	}
	taken[name] = true
	return name
}
