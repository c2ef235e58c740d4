package features

import (
	"bytes"
	"errors"
	"math"
	"strconv"
)

// SparkDouble parses a double field as Spark's CSV reader does with an
// explicit schema: "NaN", "Inf" and "-Inf" as they stand; otherwise
// around characters up to U+0020 trimmed (as Java's parseDouble does),
// "Infinity", "+Infinity", "-Infinity" and "NaN", or a number as Java
// reads it, a trailing d, D, f or F taken, out-of-range values rounded to
// infinity or zero. Go's other spellings (inf, nan, digit separators) are
// not numbers. The decoder of specs with stages reads double columns with
// it, and spec infer types the sampled columns by it.
func SparkDouble(f []byte) (float64, error) {
	switch string(f) {
	case "NaN":
		return math.NaN(), nil
	case "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	}
	t := bytes.TrimFunc(f, func(r rune) bool { return r <= ' ' })
	switch string(t) {
	case "Infinity", "+Infinity":
		return math.Inf(1), nil
	case "NaN":
		return math.NaN(), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	if n := len(t); n > 1 && bytes.IndexByte([]byte("dDfF"), t[n-1]) >= 0 {
		t = t[:n-1]
	}
	// Go takes what Java does not: inf, nan, digit separators.
	if len(t) == 0 || bytes.ContainsAny(t, "_iInN") {
		return 0, errors.New("not a number")
	}
	v, err := strconv.ParseFloat(string(t), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errors.New("not a number")
	}
	return v, nil
}
