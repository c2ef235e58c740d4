package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	pqformat "github.com/parquet-go/parquet-go/format"

	"github.com/shardprep/shardprep/storage/storagetest"
)

// The Abalone job's slot names, by Spark's attribute rule, and its
// csv header.
var (
	abaloneSlots  = []string{"sex_vec_M", "sex_vec_I", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight"}
	abaloneHeader = "rings," + strings.Join(abaloneSlots, ",") + "\n"
)

// binOut runs the built shardprep with args and returns its stdout; it
// fails t unless it exits 0.
func binOut(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := runBin(t, baseEnv(), args...)
	if code != 0 {
		t.Fatalf("shardprep %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// textRows parses text lines into numbers.
func textRows(t *testing.T, data []byte) [][]float64 {
	t.Helper()
	var rows [][]float64
	for _, line := range lines(data) {
		var row []float64
		for _, f := range strings.Split(line, ",") {
			row = append(row, mustFloat(t, f))
		}
		rows = append(rows, row)
	}
	return rows
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("number %q: %v", s, err)
	}
	return v
}

// libsvmRows parses libsvm lines of width slots into numbers, checking
// that indices are 1-based, increasing, and that no zero is written.
func libsvmRows(t *testing.T, data []byte, width int) [][]float64 {
	t.Helper()
	var rows [][]float64
	for _, line := range lines(data) {
		fields := strings.Split(line, " ")
		row := make([]float64, 1+width)
		row[0] = mustFloat(t, fields[0])
		last := 0
		for _, f := range fields[1:] {
			is, vs, _ := strings.Cut(f, ":")
			i, err := strconv.Atoi(is)
			if err != nil || i <= last || i > width {
				t.Fatalf("line %q: bad index in %q", line, f)
			}
			if row[i] = mustFloat(t, vs); row[i] == 0 {
				t.Fatalf("line %q: a zero is written", line)
			}
			last = i
		}
		rows = append(rows, row)
	}
	return rows
}

// parquetRows reads a parquet part with parquet-go, a reader independent
// of the writer, after checking its magic numbers and its footer: one
// required double column per name of cols, snappy column chunks, the row
// groups adding up to the rows read.
func parquetRows(t *testing.T, data []byte, cols []string) [][]float64 {
	t.Helper()
	if len(data) < 12 || string(data[:4]) != "PAR1" || string(data[len(data)-4:]) != "PAR1" {
		t.Fatalf("no PAR1 magic at both ends of %d bytes", len(data))
	}
	f, err := pq.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	md := f.Metadata()
	var names []string
	for _, el := range md.Schema[1:] {
		if el.Type != thrift.New(pqformat.Double) || el.RepetitionType != thrift.New(pqformat.Required) {
			t.Fatalf("column %s is not a required double", el.Name)
		}
		names = append(names, el.Name)
	}
	if !slices.Equal(names, cols) {
		t.Fatalf("columns %q, want %q", names, cols)
	}
	var sum int64
	for _, rg := range md.RowGroups {
		sum += rg.NumRows
		for _, cc := range rg.Columns {
			if cc.MetaData.Codec != pqformat.Snappy {
				t.Fatalf("codec %v, want SNAPPY", cc.MetaData.Codec)
			}
		}
	}
	r := pq.NewReader(f)
	defer r.Close()
	var rows [][]float64
	buf := make([]pq.Row, 256)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			vals := make([]float64, len(row))
			for _, v := range row {
				vals[v.Column()] = v.Double()
			}
			rows = append(rows, vals)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if sum != md.NumRows || sum != int64(len(rows)) {
		t.Fatalf("row groups hold %d rows, the footer says %d, %d were read", sum, md.NumRows, len(rows))
	}
	return rows
}

// sameNumbers fails unless got and want are the same numbers, bit for bit,
// but that a slot's -0.0 may read back as 0.0 (libsvm leaves zeros out).
func sameNumbers(t *testing.T, what string, got, want [][]float64, zeroSign bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		eq := slices.EqualFunc(got[i], want[i], func(a, b float64) bool {
			return math.Float64bits(a) == math.Float64bits(b) || !zeroSign && a == 0 && b == 0
		})
		if !eq {
			t.Fatalf("%s row %d: %v, want %v", what, i, got[i], want[i])
		}
	}
}

// checkFormat checks the parts got of an output in format f against the
// parts want of the text output of the same job.
func checkFormat(t *testing.T, f string, want, got map[string][]byte) {
	t.Helper()
	ext := map[string]string{"parquet": ".parquet"}[f]
	if len(got) != len(want) {
		t.Fatalf("%d parts, want %d", len(got), len(want))
	}
	for key, text := range want {
		data, ok := got[key+ext]
		if !ok {
			t.Fatalf("no part %s%s", key, ext)
		}
		switch f {
		case "csv":
			if string(data) != abaloneHeader+string(text) {
				t.Fatalf("%s is not the text part under the header", key)
			}
			sameNumbers(t, key, textRows(t, data[len(abaloneHeader):]), textRows(t, text), true)
		case "libsvm":
			sameNumbers(t, key, libsvmRows(t, data, len(abaloneSlots)), textRows(t, text), false)
		case "parquet":
			sameNumbers(t, key, parquetRows(t, data, append([]string{"rings"}, abaloneSlots...)), textRows(t, text), true)
		}
	}
}

// checkFeatures checks the features.json of an output in format f.
func checkFeatures(t *testing.T, data []byte, f string) {
	t.Helper()
	var got struct {
		Format string   `json:"format"`
		Label  string   `json:"label"`
		Slots  []string `json:"slots"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Format != f || got.Label != "rings" || !slices.Equal(got.Slots, abaloneSlots) {
		t.Fatalf("features.json %s", data)
	}
}

// TestOutputFormats runs the job on 200,000 rows in 1 MiB splits in each
// output format and reads every part back with a reader of its own: the
// same numbers as the text output of the same job.
func TestOutputFormats(t *testing.T) {
	in := testData(t)
	ref := reference(t, in, "23", "1MiB")
	text := partsOf(t, ref)
	ft, err := os.ReadFile(filepath.Join(ref, "_shardprep", "features.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkFeatures(t, ft, "text")
	for _, f := range []string{"csv", "libsvm", "parquet"} {
		t.Run(f, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			binOut(t, "run", "--input", in, "--output", out, "--seed", "23", "--split-size", "1MiB", "--workers", "2", "--output-format", f, "--quiet")
			committed(t, out)
			parts := partsOf(t, out)
			checkFormat(t, f, text, parts)
			data, err := os.ReadFile(filepath.Join(out, "_shardprep", "features.json"))
			if err != nil {
				t.Fatal(err)
			}
			checkFeatures(t, data, f)
			if m := readManifest(t, out); m.Spec.Output.Format != f {
				t.Errorf("the manifest's spec says output format %q", m.Spec.Output.Format)
			}
			// head prints a split's first lines as the text output has them.
			want := strings.Join(lines(text["train/part-00000"])[:3], "\n") + "\n"
			switch f {
			case "csv":
				want = abaloneHeader + strings.Join(lines(text["train/part-00000"])[:2], "\n") + "\n"
			case "libsvm":
				want = strings.Join(lines(parts["train/part-00000"])[:3], "\n") + "\n"
			}
			if got := binOut(t, "head", "-n", "3", filepath.Join(out, "train")); got != want {
				t.Errorf("head:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestOutputFormatOfTheSpec: the spec's output.format chooses the format,
// --output-format overrides it, an unknown one is refused, and a text
// job --overwrite replaces a parquet output, .parquet parts included.
func TestOutputFormatOfTheSpec(t *testing.T) {
	spec, err := os.ReadFile("sample/abalone.spec.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, format string) string {
		var m map[string]any
		if err := json.Unmarshal(spec, &m); err != nil {
			t.Fatal(err)
		}
		m["output"] = map[string]string{"format": format}
		data, _ := json.Marshal(m)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	csvSpec, badSpec := write("csv.json", "csv"), write("bad.json", "xml")
	out := filepath.Join(dir, "out")
	binOut(t, "run", "--spec", csvSpec, "--output", out, "--seed", "1", "--quiet")
	if got := binOut(t, "head", "-n", "1", filepath.Join(out, "train")); got != abaloneHeader {
		t.Errorf("the spec's csv: head %q", got)
	}
	binOut(t, "run", "--spec", csvSpec, "--output-format", "parquet", "--output", out, "--overwrite", "--seed", "1", "--quiet")
	parts := partsOf(t, out)
	if _, ok := parts["train/part-00000.parquet"]; !ok || len(parts) != 6 {
		t.Errorf("--output-format parquet over the spec's csv: parts %v", slices.Sorted(maps.Keys(parts)))
	}
	binOut(t, "run", "--output", out, "--overwrite", "--seed", "1", "--quiet")
	parts = partsOf(t, out)
	if _, ok := parts["train/part-00000"]; !ok || len(parts) != 6 {
		t.Errorf("text over parquet: parts %v", slices.Sorted(maps.Keys(parts)))
	}
	for _, c := range []struct{ args []string }{
		{[]string{"run", "--spec", badSpec, "--output", filepath.Join(dir, "bad1")}},
		{[]string{"run", "--output-format", "json", "--output", filepath.Join(dir, "bad2")}},
	} {
		_, stderr, code := runBin(t, baseEnv(), c.args...)
		if code == 0 || strings.Count(stderr, "\n") > 2 || !strings.Contains(stderr, "unknown output format") {
			t.Errorf("%v: exit %d\n%s", c.args, code, stderr)
		}
	}
}

// TestSpecInfer drafts specs with the binary: of the bundled sample, and
// of a folder whose first object is a gzipped CSV file with a header.
func TestSpecInfer(t *testing.T) {
	var got map[string]any
	if err := json.Unmarshal([]byte(binOut(t, "spec", "infer", "sample/abalone.csv")), &got); err != nil {
		t.Fatal(err)
	}
	cols := []any{map[string]any{"name": "c0", "type": "string"}}
	for i := 1; i <= 8; i++ {
		cols = append(cols, map[string]any{"name": "c" + strconv.Itoa(i), "type": "double"})
	}
	if !reflect.DeepEqual(got["columns"], cols) || got["label"] != "c8" || got["header"] != false {
		t.Errorf("draft of the sample: %v", got)
	}
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("make,fuel,hp,price\ntoyota,gas,110,15000\nbmw,,95,21000.5\n"))
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "a-cars.csv.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b-other.csv"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runBin(t, baseEnv(), "spec", "infer", "--header", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	stages, _ := json.Marshal(got["stages"])
	wantStages := `[{"handleInvalid":"keep","inputCols":["make","fuel"],"outputCols":["make_idx","fuel_idx"],"stage":"StringIndexer"},` +
		`{"inputCols":["make_idx","fuel_idx"],"outputCols":["make_vec","fuel_vec"],"stage":"OneHotEncoder"},` +
		`{"inputCols":["make_vec","fuel_vec","hp"],"outputCol":"features","stage":"VectorAssembler"}]`
	if string(stages) != wantStages || got["label"] != "price" || got["header"] != true {
		t.Errorf("draft of the headered file:\n%s", stdout)
	}
	if e := stderr; !strings.Contains(e, "a-cars.csv.gz from 2 sampled rows") || !strings.Contains(e, `column "fuel": 1 of 2 sampled values are empty (null): the StringIndexer's handleInvalid "keep"`) {
		t.Errorf("notes:\n%s", e)
	}
}

// TestOutputFormatsOverMinIO runs jobs against MinIO (scripts/test.sh
// starts it) with the binary: a 1+2 cluster writing parquet, one process
// writing csv, then head on the parquet output and spec infer on the
// input, both on S3. Every part reads back to the numbers of the local
// text output of the same job.
func TestOutputFormatsOverMinIO(t *testing.T) {
	e, prefix := storagetest.MinIO(t)
	ctx := context.Background()
	client := e.RootClient(t)
	in := testData(t)
	text := partsOf(t, reference(t, in, "17", "1MiB"))
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	inKey := prefix + "in/" + filepath.Base(in)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Bucket), Key: aws.String(inKey), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	root := "s3://" + e.Bucket + "/"
	env := clusterEnv("AWS_ACCESS_KEY_ID="+e.RootUser, "AWS_SECRET_ACCESS_KEY="+e.RootPassword, "AWS_REGION=us-east-1")
	// objects returns the parts and features.json under an output prefix.
	objects := func(t *testing.T, out string) (parts map[string][]byte, features []byte) {
		t.Helper()
		parts = map[string][]byte{}
		p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(e.Bucket), Prefix: aws.String(out)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				rel := strings.TrimPrefix(aws.ToString(o.Key), out)
				if !strings.Contains(rel, "/part-") && rel != "_shardprep/features.json" {
					continue
				}
				g, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.Bucket), Key: o.Key})
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(g.Body)
				g.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if rel == "_shardprep/features.json" {
					features = body
				} else {
					parts[rel] = body
				}
			}
		}
		return parts, features
	}

	t.Run("parquet, 1+2 cluster", func(t *testing.T) {
		out := prefix + "parquet/"
		coord, addr := startCoordinator(t, env, nil, "--listen", "127.0.0.1:0", "--input", root+inKey, "--output", root+out,
			"--s3-endpoint", e.Endpoint, "--seed", "17", "--split-size", "1MiB", "--workers", "1", "--output-format", "parquet")
		var workers []*proc
		for i := 1; i <= 2; i++ {
			workers = append(workers, startWorker(t, env, nil, "http://"+addr, fmt.Sprintf("w%d", i), "--s3-endpoint", e.Endpoint))
		}
		if code := coord.wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("coordinator exit %d\n%s", code, lastLines(coord.errText(), 5))
		}
		for _, w := range workers {
			if code := w.wait(t, 30*time.Second); code != 0 {
				t.Errorf("%s exit %d\n%s", w.name, code, lastLines(w.errText(), 3))
			}
		}
		parts, features := objects(t, out)
		checkFormat(t, "parquet", text, parts)
		checkFeatures(t, features, "parquet")
		stdout, stderr, code := runBin(t, env, "head", "-n", "4", "--s3-endpoint", e.Endpoint, root+out+"validation")
		want := strings.Join(lines(text["validation/part-00000"])[:4], "\n") + "\n"
		if code != 0 || stdout != want {
			t.Errorf("head on S3: exit %d\n%s%s\nwant\n%s", code, stdout, stderr, want)
		}
	})
	t.Run("csv, one process", func(t *testing.T) {
		out := prefix + "csv/"
		if _, stderr, code := runBin(t, env, "run", "--input", root+inKey, "--output", root+out, "--s3-endpoint", e.Endpoint,
			"--seed", "17", "--split-size", "1MiB", "--workers", "2", "--output-format", "csv", "--quiet"); code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		parts, features := objects(t, out)
		checkFormat(t, "csv", text, parts)
		checkFeatures(t, features, "csv")
	})
	t.Run("spec infer", func(t *testing.T) {
		stdout, stderr, code := runBin(t, env, "spec", "infer", "--s3-endpoint", e.Endpoint, root+inKey)
		var got map[string]any
		if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || got["label"] != "c8" {
			t.Errorf("exit %d\n%s%s", code, stdout, stderr)
		}
	})
}

// TestOutputFormatsOfStages: a spec with stages (the cars example, with
// nulls, an imputer and a scaler) in csv and parquet: the header and the
// columns name the slots by Spark's rule, and the rows are the text
// output's numbers.
func TestOutputFormatsOfStages(t *testing.T) {
	dir := t.TempDir()
	run := func(f string) string {
		out := filepath.Join(dir, f)
		binOut(t, "run", "--spec", "sample/cars.spec.json", "--input", "sample/cars.csv", "--output", out, "--seed", "3", "--output-format", f, "--quiet")
		return out
	}
	text := partsOf(t, run("text"))
	var names struct {
		Label string   `json:"label"`
		Slots []string `json:"slots"`
	}
	data, err := os.ReadFile(filepath.Join(run("csv"), "_shardprep", "features.json"))
	if err != nil || json.Unmarshal(data, &names) != nil {
		t.Fatalf("features.json: %v %s", err, data)
	}
	if names.Label != "price" || !slices.Contains(names.Slots, "make_vec_toyota") || !slices.Contains(names.Slots, "hp_imp") {
		t.Fatalf("slot names %v", names)
	}
	cols := append([]string{names.Label}, names.Slots...)
	csvParts := partsOf(t, filepath.Join(dir, "csv"))
	pqParts := partsOf(t, run("parquet"))
	for key, want := range text {
		if got := string(csvParts[key]); got != strings.Join(cols, ",")+"\n"+string(want) {
			t.Errorf("%s: csv part is not the text part under the header", key)
		}
		sameNumbers(t, key, parquetRows(t, pqParts[key+".parquet"], cols), textRows(t, want), true)
	}
}
