package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/format"
)

// formatJob is abaloneJob with the output format f, and invalid rows
// skipped; the object in/bad.csv of src, if there is one, is read after
// the sample.
func formatJob(t *testing.T, src *memStore, f features.OutputFormat, mode SplitMode) *Job {
	t.Helper()
	job := abaloneJob(t, src, &Settings{Seed: 7, SplitSize: 40000, SplitMode: mode, OnInvalid: PolicySkip})
	spec := *job.Spec
	spec.Output.Format = string(f)
	objs := job.Objects
	if bad, ok := src.objects["in/bad.csv"]; ok {
		objs = append(objs, Object{URL: "in/bad.csv", Name: "bad.csv", Size: int64(len(bad)), Root: "in/"})
	}
	j, err := NewJob(&spec, objs, &job.Settings)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestOutputFormats runs the Abalone job in each format and checks each
// part against the text part of the same split: the csv part is its
// lines under a header, the libsvm part its numbers, the parquet part its
// rows; the rejected rows stay text, and features.json names the slots.
func TestOutputFormats(t *testing.T) {
	for _, mode := range []SplitMode{SplitHash, SplitSpark} {
		src := newMemStore()
		text := runFormat(t, src, features.FormatText, mode)
		// An object after the sample holds an invalid row, which is
		// rejected, and a valid one.
		src.objects["in/bad.csv"] = []byte("M,0.1,0.2,0.3,x,0.1,0.1,0.1,3\nF,0.1,0.2,0.3,0.4,0.1,0.1,0.1,3\n")
		for _, f := range features.OutputFormats[1:] {
			t.Run(string(mode)+"/"+string(f), func(t *testing.T) {
				out := runFormat(t, src, f, mode)
				var names featureNames
				if err := json.Unmarshal(out.objects[FeaturesKey], &names); err != nil {
					t.Fatal(err)
				}
				wantSlots := "sex_vec_M,sex_vec_I,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight"
				if names.Format != f || names.Label != "rings" || strings.Join(names.Slots, ",") != wantSlots {
					t.Fatalf("features.json %s", out.objects[FeaturesKey])
				}
				header := "rings," + wantSlots + "\n"
				n := 0
				for key, want := range text.objects {
					dir, base, _ := strings.Cut(key, "/")
					if dir != "train" && dir != "validation" || base == SuccessName {
						continue
					}
					n++
					got, ok := out.objects[key+format.Extension(f)]
					if !ok {
						t.Fatalf("no %s%s", key, format.Extension(f))
					}
					checkPart(t, f, key, got, want, header)
				}
				// The rejected rows' part is the bad object's, text.
				last := 0
				for key := range text.objects {
					if strings.HasPrefix(key, "train/part-") {
						last++
					}
				}
				rejKey := partKey(rejectedFolder, last, format.Extension(f))
				if n == 0 || !strings.HasPrefix(string(out.objects[rejKey]), "object\tline") {
					t.Fatalf("%d parts; rejected rows in %s: %q", n, rejKey, out.objects[rejKey])
				}
			})
		}
	}
}

// runFormat runs the Abalone job in format f and returns its output.
func runFormat(t *testing.T, src *memStore, f features.OutputFormat, mode SplitMode) *memStore {
	t.Helper()
	out := newMemStore()
	if _, err := Run(context.Background(), formatJob(t, src, f, mode), src, out, &CoordinatorOptions{Workers: 3}); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkPart checks a part in format f against the text part want.
func checkPart(t *testing.T, f features.OutputFormat, key string, got, want []byte, header string) {
	t.Helper()
	switch f {
	case features.FormatCSV:
		if string(got) != header+string(want) {
			t.Fatalf("%s: csv part is not the text part under the header", key)
		}
	case features.FormatLibSVM:
		gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		if len(gotLines) != len(wantLines) {
			t.Fatalf("%s: %d lines, want %d", key, len(gotLines), len(wantLines))
		}
		for i, w := range wantLines {
			if fromLibSVM(t, gotLines[i], 9) != w {
				t.Fatalf("%s line %d: %q is not %q", key, i+1, gotLines[i], w)
			}
		}
	case features.FormatParquet:
		var lines bytes.Buffer
		if err := format.ParquetLines(context.Background(), bytes.NewReader(got), 1<<30, &lines); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if !bytes.Equal(lines.Bytes(), want) {
			t.Fatalf("%s: the parquet rows are not the text lines", key)
		}
	}
}

// fromLibSVM rewrites a libsvm line of width slots as a text line.
func fromLibSVM(t *testing.T, line string, width int) string {
	if line == "" {
		return ""
	}
	fields := strings.Fields(line)
	vals := slices.Repeat([]string{"0.0"}, 1+width)
	vals[0] = fields[0]
	for _, p := range fields[1:] {
		is, v, _ := strings.Cut(p, ":")
		i, err := strconv.Atoi(is)
		if err != nil || i < 1 || i > width {
			t.Fatalf("bad pair %q", p)
		}
		vals[i] = v
	}
	return strings.Join(vals, ",")
}

// TestParquetClaimNamesItsParts: the claim of a parquet job owns the
// .parquet keys, and those parts are part names for the output rules.
func TestParquetClaimNamesItsParts(t *testing.T) {
	ctx := context.Background()
	src, out := newMemStore(), newMemStore()
	job := formatJob(t, src, features.FormatParquet, SplitHash)
	dead := &ClaimOptions{Name: "out", Alive: func(int) bool { return false }, Host: "elsewhere", Log: quiet}
	if _, err := ClaimOutput(ctx, out, job, dead); err != nil {
		t.Fatal(err)
	}
	out.objects["train/part-00001.parquet"] = []byte("PAR1")
	l, err := FindLeftovers(ctx, out, dead)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Owns("validation/part-00000.parquet") || !l.Owns("_rejected/part-00000") || l.Owns("train/part-00000") || l.Owns("_rejected/part-00000.parquet") {
		t.Errorf("claimed keys %v", l.Keys)
	}
	if !slices.Equal(l.Objects, []string{"train/part-00001.parquet", ClaimKey}) {
		t.Errorf("leftovers %v", l.Objects)
	}
	if got := SplitFolders([]string{"train/part-00000.parquet", "x/part-00000.parquet.tmp"}); !slices.Equal(got, []string{"train"}) {
		t.Errorf("split folders %v", got)
	}
}

func TestUnknownOutputFormat(t *testing.T) {
	job := abaloneJob(t, newMemStore(), nil)
	spec := *job.Spec
	spec.Output.Format = "json"
	_, err := NewJob(&spec, job.Objects, nil)
	if err == nil || err.Error() != `spec: output.format: unknown output format "json" (want text, csv, libsvm, parquet)` {
		t.Fatalf("NewJob: %v", err)
	}
}
