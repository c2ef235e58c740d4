package features

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Stage is one stage of a spec's "stages" list, written as in PySpark: the
// stage's class name under "stage" and its params, with PySpark's names,
// beside it:
//
//	{"stage": "StringIndexer", "inputCol": "sex", "outputCol": "sex_idx", "handleInvalid": "keep"}
//
// The params are checked (names, types, values) by ParseSpec.
type Stage struct {
	Class  string
	Params map[string]json.RawMessage
}

// MarshalJSON writes the stage as one object: "stage" first, then the
// params in name order.
func (s Stage) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	cls, _ := json.Marshal(s.Class)
	b.WriteString(`{"stage":`)
	b.Write(cls)
	names := make([]string, 0, len(s.Params))
	for k := range s.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		key, _ := json.Marshal(k)
		var v bytes.Buffer
		if err := json.Compact(&v, s.Params[k]); err != nil {
			return nil, fmt.Errorf("stage %s param %s: %w", s.Class, k, err)
		}
		b.WriteByte(',')
		b.Write(key)
		b.WriteByte(':')
		b.Write(v.Bytes())
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a stage object: "stage" names the class, every
// other key is a param.
func (s *Stage) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	raw, ok := m["stage"]
	if !ok {
		return errors.New(`a stage needs "stage": its PySpark class name, e.g. "StringIndexer"`)
	}
	if err := json.Unmarshal(raw, &s.Class); err != nil {
		return fmt.Errorf(`"stage": want a class name: %w`, err)
	}
	delete(m, "stage")
	s.Params = m
	return nil
}

// colKind is the type of a column flowing between stages.
type colKind uint8

const (
	kindString colKind = iota + 1
	kindDouble
	kindVector
)

func (k colKind) String() string {
	switch k {
	case kindString:
		return "string"
	case kindDouble:
		return "double"
	}
	return "vector"
}

// Handling of invalid values (the handleInvalid param).
const (
	invalidError = "error"
	invalidSkip  = "skip"
	invalidKeep  = "keep"
)

// stageDef is a checked stage: its params, typed, with PySpark's
// defaults filled in.
type stageDef struct {
	index int
	class string
	in    []string // input columns (one per output, but VectorAssembler's)
	out   []string // output columns

	handleInvalid string
	orderType     string      // StringIndexer
	dropLast      bool        // OneHotEncoder
	strategy      string      // Imputer
	missingValue  float64     // Imputer
	withMean      bool        // StandardScaler
	withStd       bool        // StandardScaler
	min, max      float64     // MinMaxScaler
	splits        [][]float64 // Bucketizer, per input column
	thresholds    []float64   // Binarizer, per input column
}

func (d *stageDef) name() string { return fmt.Sprintf("stages[%d] (%s)", d.index, d.class) }

// paramSet is how a stage's params are read: each read marks its name,
// and the names left unread are unknown params.
type paramSet struct {
	def  *stageDef
	raw  map[string]json.RawMessage
	used map[string]bool
}

func (p *paramSet) has(name string) bool { _, ok := p.raw[name]; return ok }

func (p *paramSet) errorf(name, format string, args ...any) error {
	return fmt.Errorf("spec: %s: param %s: %s", p.def.name(), name, fmt.Sprintf(format, args...))
}

func (p *paramSet) get(name string, v any) (bool, error) {
	p.used[name] = true
	raw, ok := p.raw[name]
	if !ok {
		return false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return true, p.errorf(name, "%v", err)
	}
	return true, nil
}

func (p *paramSet) str(name, def string, allowed ...string) (string, error) {
	v := def
	if _, err := p.get(name, &v); err != nil {
		return "", err
	}
	if len(allowed) > 0 && !slices.Contains(allowed, v) {
		return "", p.errorf(name, "%q: want one of %s", v, strings.Join(allowed, ", "))
	}
	return v, nil
}

func (p *paramSet) boolean(name string, def bool) (bool, error) {
	v := def
	_, err := p.get(name, &v)
	return v, err
}

// number reads a number param; JSON has no NaN or infinities, so the
// strings "NaN", "Infinity", "-Infinity", "Inf" and "-Inf" stand for them.
func (p *paramSet) number(name string, def float64) (float64, error) {
	var f jsonFloat
	f = jsonFloat(def)
	_, err := p.get(name, &f)
	return float64(f), err
}

func (p *paramSet) numbers(name string) ([]float64, bool, error) {
	var fs []jsonFloat
	ok, err := p.get(name, &fs)
	out := make([]float64, len(fs))
	for i, f := range fs {
		out[i] = float64(f)
	}
	return out, ok, err
}

// jsonFloat is a float64 whose JSON form may also be "NaN", "Infinity",
// "-Infinity" (written so when not finite).
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case v != v:
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(v)
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		switch s {
		case "NaN":
			*f = jsonFloat(math.NaN())
		case "Infinity", "Inf", "inf":
			*f = jsonFloat(math.Inf(1))
		case "-Infinity", "-Inf", "-inf":
			*f = jsonFloat(math.Inf(-1))
		default:
			return fmt.Errorf("%q is not a number (write NaN, Infinity or -Infinity as strings, other numbers bare)", s)
		}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%s is not a number", b)
	}
	*f = jsonFloat(v)
	return nil
}

// columns reads the input and output column params: inputCol/outputCol
// or inputCols/outputCols (multi says whether the stage has the latter);
// VectorAssembler's inputCols/outputCol are read by its own parser.
func (p *paramSet) columns(multi bool) error {
	d := p.def
	var in, out string
	hasIn, err := p.get("inputCol", &in)
	if err != nil {
		return err
	}
	hasOut, err := p.get("outputCol", &out)
	if err != nil {
		return err
	}
	if !multi {
		if !hasIn || in == "" {
			return p.errorf("inputCol", "is required")
		}
		if !hasOut || out == "" {
			return p.errorf("outputCol", "is required (Spark's default is a generated name)")
		}
		d.in, d.out = []string{in}, []string{out}
		return nil
	}
	hasIns, err := p.get("inputCols", &d.in)
	if err != nil {
		return err
	}
	hasOuts, err := p.get("outputCols", &d.out)
	if err != nil {
		return err
	}
	switch {
	case hasIn && hasIns:
		return p.errorf("inputCols", "set both inputCol and inputCols: use one")
	case hasIn:
		if hasOuts || !hasOut || out == "" {
			return p.errorf("outputCol", "inputCol needs outputCol (and no outputCols)")
		}
		d.in, d.out = []string{in}, []string{out}
	case hasIns:
		if hasOut || !hasOuts {
			return p.errorf("outputCols", "inputCols needs outputCols (and no outputCol)")
		}
		if len(d.in) == 0 || len(d.in) != len(d.out) {
			return p.errorf("outputCols", "%d inputCols and %d outputCols: want the same number, at least one", len(d.in), len(d.out))
		}
	default:
		return p.errorf("inputCol", "is required (or inputCols)")
	}
	for i := range d.in {
		if d.in[i] == "" || d.out[i] == "" {
			return p.errorf("inputCols", "a column name is empty")
		}
	}
	return nil
}

// stageParsers read each class's params.
var stageParsers = map[string]func(p *paramSet) error{
	"StringIndexer":   parseStringIndexer,
	"OneHotEncoder":   parseOneHotEncoder,
	"VectorAssembler": parseVectorAssembler,
	"Imputer":         parseImputer,
	"StandardScaler":  parseStandardScaler,
	"MinMaxScaler":    parseMinMaxScaler,
	"MaxAbsScaler":    func(p *paramSet) error { return p.columns(false) },
	"Bucketizer":      parseBucketizer,
	"Binarizer":       parseBinarizer,
}

func stageClasses() string {
	names := make([]string, 0, len(stageParsers))
	for k := range stageParsers {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func parseStringIndexer(p *paramSet) (err error) {
	d := p.def
	if err = p.columns(true); err != nil {
		return err
	}
	if d.handleInvalid, err = p.str("handleInvalid", invalidError, invalidError, invalidSkip, invalidKeep); err != nil {
		return err
	}
	d.orderType, err = p.str("stringOrderType", "frequencyDesc", "frequencyDesc", "frequencyAsc", "alphabetDesc", "alphabetAsc")
	return err
}

func parseOneHotEncoder(p *paramSet) (err error) {
	d := p.def
	if err = p.columns(true); err != nil {
		return err
	}
	if d.handleInvalid, err = p.str("handleInvalid", invalidError, invalidError, invalidKeep); err != nil {
		return err
	}
	d.dropLast, err = p.boolean("dropLast", true)
	return err
}

func parseVectorAssembler(p *paramSet) (err error) {
	d := p.def
	ok, err := p.get("inputCols", &d.in)
	if err != nil {
		return err
	}
	if !ok || len(d.in) == 0 {
		return p.errorf("inputCols", "is required: at least one column")
	}
	var out string
	if ok, err := p.get("outputCol", &out); err != nil {
		return err
	} else if !ok || out == "" {
		return p.errorf("outputCol", "is required (Spark's default is a generated name)")
	}
	d.out = []string{out}
	d.handleInvalid, err = p.str("handleInvalid", invalidError, invalidError, invalidSkip, invalidKeep)
	return err
}

func parseImputer(p *paramSet) (err error) {
	d := p.def
	if err = p.columns(true); err != nil {
		return err
	}
	if d.strategy, err = p.str("strategy", "mean", "mean", "median", "mode"); err != nil {
		return err
	}
	if d.missingValue, err = p.number("missingValue", math.NaN()); err != nil {
		return err
	}
	// The median is exact whatever relativeError says.
	rel, err := p.number("relativeError", 0.001)
	if err == nil && !(rel >= 0 && rel <= 1) {
		err = p.errorf("relativeError", "%v: want a number in [0, 1]", rel)
	}
	return err
}

func parseStandardScaler(p *paramSet) (err error) {
	d := p.def
	if err = p.columns(false); err != nil {
		return err
	}
	if d.withMean, err = p.boolean("withMean", false); err != nil {
		return err
	}
	d.withStd, err = p.boolean("withStd", true)
	return err
}

func parseMinMaxScaler(p *paramSet) (err error) {
	d := p.def
	if err = p.columns(false); err != nil {
		return err
	}
	if d.min, err = p.number("min", 0); err != nil {
		return err
	}
	if d.max, err = p.number("max", 1); err != nil {
		return err
	}
	if !(d.min < d.max) || math.IsInf(d.min, 0) || math.IsInf(d.max, 0) {
		return p.errorf("max", "min %v and max %v: want finite numbers with min < max", d.min, d.max)
	}
	return nil
}

func parseBucketizer(p *paramSet) (err error) {
	d := p.def
	if err = p.columns(true); err != nil {
		return err
	}
	if d.handleInvalid, err = p.str("handleInvalid", invalidError, invalidError, invalidSkip, invalidKeep); err != nil {
		return err
	}
	one, hasOne, err := p.numbers("splits")
	if err != nil {
		return err
	}
	var many [][]jsonFloat
	hasMany, err := p.get("splitsArray", &many)
	if err != nil {
		return err
	}
	switch {
	case hasOne && !hasMany && len(d.in) == 1:
		d.splits = [][]float64{one}
	case hasMany && !hasOne && len(many) == len(d.in):
		for _, s := range many {
			fs := make([]float64, len(s))
			for i, f := range s {
				fs[i] = float64(f)
			}
			d.splits = append(d.splits, fs)
		}
	default:
		return p.errorf("splits", "want splits with inputCol, or splitsArray with one list per inputCols entry")
	}
	for _, s := range d.splits {
		if len(s) < 3 {
			return p.errorf("splits", "%v: want at least 3 split points", s)
		}
		for i, v := range s {
			if v != v || i > 0 && !(s[i-1] < v) {
				return p.errorf("splits", "%v: want strictly increasing numbers, no NaN", s)
			}
		}
	}
	return nil
}

func parseBinarizer(p *paramSet) (err error) {
	d := p.def
	if err = p.columns(true); err != nil {
		return err
	}
	one, err := p.number("threshold", 0)
	if err != nil {
		return err
	}
	many, hasMany, err := p.numbers("thresholds")
	if err != nil {
		return err
	}
	d.thresholds = slices.Repeat([]float64{one}, len(d.in))
	if hasMany {
		if p.has("threshold") || len(many) != len(d.in) {
			return p.errorf("thresholds", "want one threshold per inputCols entry (and no threshold)")
		}
		d.thresholds = many
	}
	return nil
}

// parseStage checks stage i of a spec.
func parseStage(i int, st Stage) (*stageDef, error) {
	d := &stageDef{index: i, class: st.Class}
	parse, ok := stageParsers[st.Class]
	if !ok {
		return nil, fmt.Errorf("spec: stages[%d]: unknown stage %q: want one of %s", i, st.Class, stageClasses())
	}
	p := &paramSet{def: d, raw: st.Params, used: map[string]bool{}}
	if err := parse(p); err != nil {
		return nil, err
	}
	for name := range st.Params {
		if !p.used[name] {
			known := make([]string, 0, len(p.used))
			for k := range p.used {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("spec: %s: unknown param %q (%s takes %s)", d.name(), name, d.class, strings.Join(known, ", "))
		}
	}
	return d, nil
}
