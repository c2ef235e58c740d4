package features

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// oddStats returns stats of values that take every path: zeros of both
// signs, subnormals, the extremes, infinities, NaN and nulls, and random
// bits.
func oddStats(t *testing.T) *ColumnStats {
	t.Helper()
	spec, err := ParseSpec([]byte(`{"columns":[{"name":"x","type":"double"},{"name":"y","type":"double"}],
	  "categorical":[],"numeric":["x"],"label":"y","splits":[{"name":"a","weight":1},{"name":"b","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	vals := []float64{0, math.Copysign(0, -1), 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), 1, -1, 0.1}
	for range 2000 {
		vals = append(vals, math.Float64frombits(rng.Uint64()), rng.Float64()*100)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	for i, v := range vals {
		if i%97 == 5 {
			b.AppendNull()
		}
		b.Append(v)
	}
	col := b.NewFloat64Array()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true}, {Name: "y", Type: arrow.PrimitiveTypes.Float64, Nullable: true}}, nil)
	rec := array.NewRecord(schema, []arrow.Array{col, col}, int64(col.Len()))
	defer rec.Release()
	s := NewColumnStats(spec)
	if err := s.Add(rec, splitRows(col.Len(), 0)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestColumnStatsBinaryRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	spec := abaloneSpec(t)
	rec := abaloneRecord(t, mem)
	defer rec.Release()
	abalone := NewColumnStats(spec)
	if err := abalone.Add(rec, splitRows(int(rec.NumRows()), 0)); err != nil {
		t.Fatal(err)
	}
	empty := NewColumnStats(spec)
	for name, s := range map[string]*ColumnStats{"abalone": abalone, "odd values": oddStats(t), "empty": empty} {
		t.Run(name, func(t *testing.T) {
			bin, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back ColumnStats
			if err := back.UnmarshalBinary(bin); err != nil {
				t.Fatal(err)
			}
			want, got := mustJSON(t, s), mustJSON(t, &back)
			if !bytes.Equal(got, want) {
				t.Fatalf("round trip changed the stats:\n%s\nwant\n%s", got, want)
			}
			if name != "empty" && len(bin) > len(want)/3 {
				t.Errorf("binary form %d bytes, JSON %d", len(bin), len(want))
			}
			// Merged, they are the stats merged from the JSON form.
			var viaJSON ColumnStats
			if err := viaJSON.UnmarshalJSON(want); err != nil {
				t.Fatal(err)
			}
			if err := back.Merge(s); err != nil {
				t.Fatal(err)
			}
			if err := viaJSON.Merge(s); err != nil {
				t.Fatal(err)
			}
			if a, b := mustJSON(t, &back), mustJSON(t, &viaJSON); !bytes.Equal(a, b) {
				t.Fatal("merged after the binary form, the stats differ from merged after JSON")
			}
		})
	}
}

// TestColumnStatsBinaryRejects: a truncated or altered encoding is an
// error or, where the change keeps it well formed, other stats; never a
// panic.
func TestColumnStatsBinaryRejects(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := abaloneRecord(t, mem)
	defer rec.Release()
	stats := NewColumnStats(abaloneSpec(t))
	if err := stats.Add(rec, splitRows(int(rec.NumRows()), 0)); err != nil {
		t.Fatal(err)
	}
	bin, err := stats.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(bin) {
		var s ColumnStats
		if err := s.UnmarshalBinary(bin[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes read without an error", n, len(bin))
		}
	}
	var s ColumnStats
	if err := s.UnmarshalBinary(append(bin, 0)); err == nil {
		t.Fatal("a byte past the end read without an error")
	}
	rejected := 0
	for i := range bin {
		for _, x := range []byte{0x01, 0x80} {
			c := bytes.Clone(bin)
			c[i] ^= x
			var s ColumnStats
			if s.UnmarshalBinary(c) != nil {
				rejected++
			}
		}
	}
	if rejected == 0 {
		t.Fatal("no altered byte was noticed")
	}
}

func FuzzColumnStatsBinary(f *testing.F) {
	for _, seed := range [][]byte{{columnStatsBinary}, {columnStatsBinary, 1, 'y', 0, 0}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s ColumnStats
		if s.UnmarshalBinary(data) != nil {
			return
		}
		// What reads back encodes again, and its summaries are sane.
		if _, err := s.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}
