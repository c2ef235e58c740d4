package features

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// wireLabel is one label with its count in Stats and Model JSON. Labels are
// byte strings taken verbatim from the input; one that is valid UTF-8 is
// written as "label", any other as "label_base64" (standard base64 of its
// bytes), so every label survives a JSON round trip exactly.
type wireLabel struct {
	Label       *string `json:"label,omitempty"`
	LabelBase64 []byte  `json:"label_base64,omitempty"`
	Count       *int64  `json:"count"`
}

func toWire(label string, count int64) wireLabel {
	c := count
	if utf8.ValidString(label) {
		l := label
		return wireLabel{Label: &l, Count: &c}
	}
	return wireLabel{LabelBase64: []byte(label), Count: &c}
}

func (w wireLabel) decode() (string, int64, error) {
	if w.Count == nil {
		return "", 0, errors.New("count is missing")
	}
	switch {
	case w.Label != nil && w.LabelBase64 != nil:
		return "", 0, errors.New("both label and label_base64 are set")
	case w.Label != nil:
		return *w.Label, *w.Count, nil
	case w.LabelBase64 != nil:
		if utf8.Valid(w.LabelBase64) {
			return "", 0, fmt.Errorf("label_base64 holds valid UTF-8 %q: write it as label", w.LabelBase64)
		}
		return string(w.LabelBase64), *w.Count, nil
	}
	return "", 0, errors.New("label (or label_base64) is missing")
}

// wireFit is the JSON shape shared by Stats and Model: the spec's label and
// numeric columns, the row count, and per categorical column its labels with
// their counts (Stats: in ascending byte order; Model: in index order).
type wireFit struct {
	Version     int          `json:"version"`
	Label       string       `json:"label"`
	Numeric     []string     `json:"numeric"`
	Rows        int64        `json:"rows"`
	Categorical []wireColumn `json:"categorical"`
	// Spec is the spec a model was fitted for (models only; absent in
	// models written before it was added).
	Spec *Spec `json:"spec,omitempty"`
}

type wireColumn struct {
	Column string      `json:"column"`
	Labels []wireLabel `json:"labels"`
}

// fitColumn is one decoded categorical column of a wireFit.
type fitColumn struct {
	name   string
	labels []string
	counts []int64
}

// decodeFit decodes and checks data as a wireFit of the given version.
// what names the document in errors ("stats", "model"). minCount is the
// smallest count a label may have.
func decodeFit(data []byte, what string, version int, minCount int64) (*wireFit, []fitColumn, error) {
	var w wireFit
	if err := decodeStrict(data, &w); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if w.Version != version {
		return nil, nil, fmt.Errorf("%s: version %d: want %d", what, w.Version, version)
	}
	if w.Label == "" {
		return nil, nil, fmt.Errorf("%s: label is empty", what)
	}
	if w.Rows < 0 {
		return nil, nil, fmt.Errorf("%s: rows %d is negative", what, w.Rows)
	}
	seen := map[string]string{w.Label: "label"}
	for i, name := range w.Numeric {
		if name == "" {
			return nil, nil, fmt.Errorf("%s: numeric[%d] is empty", what, i)
		}
		if prev, dup := seen[name]; dup {
			return nil, nil, fmt.Errorf("%s: numeric[%d] %q is already the %s", what, i, name, prev)
		}
		seen[name] = "numeric"
	}
	cols := make([]fitColumn, len(w.Categorical))
	for i, c := range w.Categorical {
		if c.Column == "" {
			return nil, nil, fmt.Errorf("%s: categorical[%d].column is empty", what, i)
		}
		if prev, dup := seen[c.Column]; dup {
			return nil, nil, fmt.Errorf("%s: categorical[%d].column %q is already %s", what, i, c.Column, prev)
		}
		seen[c.Column] = "categorical"
		col := fitColumn{name: c.Column, labels: make([]string, len(c.Labels)), counts: make([]int64, len(c.Labels))}
		labels := make(map[string]bool, len(c.Labels))
		var sum int64
		for j, wl := range c.Labels {
			label, count, err := wl.decode()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: categorical[%d] (column %q) labels[%d]: %w", what, i, c.Column, j, err)
			}
			if labels[label] {
				return nil, nil, fmt.Errorf("%s: categorical[%d] (column %q) labels[%d]: label %q is listed twice", what, i, c.Column, j, label)
			}
			if count < minCount {
				return nil, nil, fmt.Errorf("%s: categorical[%d] (column %q) labels[%d]: count %d for label %q: want >= %d", what, i, c.Column, j, count, label, minCount)
			}
			if sum > math.MaxInt64-count {
				return nil, nil, fmt.Errorf("%s: categorical[%d] (column %q): counts overflow", what, i, c.Column)
			}
			sum += count
			labels[label] = true
			col.labels[j], col.counts[j] = label, count
		}
		cols[i] = col
	}
	return &w, cols, nil
}

func wireColumnOf(name string, labels []string, counts []int64) wireColumn {
	c := wireColumn{Column: name, Labels: make([]wireLabel, len(labels))}
	for i := range labels {
		c.Labels[i] = toWire(labels[i], counts[i])
	}
	return c
}

// nonNil turns a nil slice into an empty one, so it encodes as [] not null.
func nonNil(names []string) []string {
	if names == nil {
		return []string{}
	}
	return names
}
