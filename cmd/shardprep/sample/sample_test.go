package sample

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSample(t *testing.T) {
	if n := bytes.Count(CSV, []byte("\n")); n != 4177 {
		t.Errorf("the sample has %d rows, want 4177", n)
	}
	spec := Spec()
	var names []string
	for _, s := range spec.Splits {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "train,validation" {
		t.Errorf("the sample's spec splits into %v", names)
	}
	if Spec() == spec {
		t.Errorf("Spec returns one shared value")
	}
}

// TestGenerateIsDeterministic: the same rows and seed give the same
// bytes, another seed others; each row has the sample's nine columns.
func TestGenerateIsDeterministic(t *testing.T) {
	gen := func(seed uint64) []byte {
		var b bytes.Buffer
		if err := Generate(context.Background(), &b, 1000, seed); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b, c := gen(3), gen(3), gen(4)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatalf("seed 3 twice equal: %v; seeds 3 and 4 equal: %v", bytes.Equal(a, b), bytes.Equal(a, c))
	}
	rows := strings.Split(strings.TrimSuffix(string(a), "\n"), "\n")
	if len(rows) != 1000 {
		t.Fatalf("%d rows, want 1000", len(rows))
	}
	for _, r := range rows {
		if f := strings.Split(r, ","); len(f) != 9 || !strings.Contains("MFI", f[0]) || f[8] == "0" {
			t.Fatalf("row %q", r)
		}
	}
}

func TestGenerateStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Generate(ctx, io.Discard, 1<<20, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
