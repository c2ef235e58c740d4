package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shardprep/shardprep/features"
)

// abaloneLines returns the lines of the Abalone sample.
func abaloneLines(t *testing.T) [][]byte {
	t.Helper()
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	for i := range lines {
		lines[i] = append(lines[i], '\n')
	}
	return lines
}

// interleaved returns the lines with the labels spread evenly: every
// prefix holds each label in about its share of the whole, so the first
// splits order the labels as the whole input does.
func interleaved(lines [][]byte) [][]byte {
	by := map[byte][][]byte{}
	for _, l := range lines {
		by[l[0]] = append(by[l[0]], l)
	}
	var out [][]byte
	taken := map[byte]int{}
	for range lines {
		var next byte
		for k, ls := range by {
			if taken[k] < len(ls) && (next == 0 || float64(taken[k])/float64(len(ls)) < float64(taken[next])/float64(len(by[next])) ||
				float64(taken[k])/float64(len(ls)) == float64(taken[next])/float64(len(by[next])) && k < next) {
				next = k
			}
		}
		out = append(out, by[next][taken[next]])
		taken[next]++
	}
	return out
}

// dataJob returns the Abalone job over data in a new store, in splits of
// about 20 kB (10 for the sample); in the Spark mode, which does not cut
// objects, data is cut into objects of about 20 kB.
func dataJob(t *testing.T, data []byte, s Settings) (*Job, *memStore) {
	t.Helper()
	return specJob(t, testSpec, data, s)
}

// specJob is dataJob with another spec.
func specJob(t *testing.T, specJSON string, data []byte, s Settings) (*Job, *memStore) {
	t.Helper()
	store := newMemStore()
	var objects []Object
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if s.SplitMode == SplitSpark {
			n = min(20000, n)
			n += bytes.IndexByte(data[n-1:], '\n')
		}
		name := fmt.Sprintf("abalone-%02d.csv", i)
		store.objects["in/"+name] = data[:n]
		objects = append(objects, Object{URL: "in/" + name, Name: name, Size: int64(n), Root: "in/"})
		data = data[n:]
	}
	spec, err := features.ParseSpec([]byte(specJSON))
	if err != nil {
		t.Fatal(err)
	}
	if s.SplitSize == 0 {
		s.SplitSize = 20000
	}
	s.Seed = 5
	job, err := NewJob(spec, objects, &s)
	if err != nil {
		t.Fatal(err)
	}
	return job, store
}

// outputs are the objects a run wrote that do not tell of the run itself
// (its manifest and report carry timings).
func outputs(store *memStore) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range store.objects {
		if !strings.HasPrefix(k, "in/") && k != ManifestKey && k != ReportKey {
			out[k] = v
		}
	}
	return out
}

// runBoth runs the job over data with the fit on a sample, and with the
// fit over every split first; it checks that both end alike (the same
// objects, or the same error) and returns the sample run's manifest,
// outputs and error.
func runBoth(t *testing.T, data []byte, s Settings) (*Manifest, map[string][]byte, error) {
	t.Helper()
	return runBothSpec(t, testSpec, data, s)
}

// runBothSpec is runBoth with another spec.
func runBothSpec(t *testing.T, spec string, data []byte, s Settings) (*Manifest, map[string][]byte, error) {
	t.Helper()
	job, store := specJob(t, spec, data, s)
	m, err := Run(context.Background(), job, store, store, &CoordinatorOptions{Workers: 2})
	job2, store2 := specJob(t, spec, data, s)
	m2, err2 := Run(context.Background(), job2, store2, store2, &CoordinatorOptions{Workers: 2, twoPass: true})
	if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
		t.Fatalf("sample's fit: %v\nfit of every split: %v", err, err2)
	}
	if n := store.stageCount(); n != 0 {
		t.Errorf("%d staged objects left", n)
	}
	if err != nil {
		return m, nil, err
	}
	got, want := outputs(store), outputs(store2)
	if len(got) != len(want) {
		t.Errorf("wrote %d objects, the fit of every split %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s differs from the fit of every split's", k)
		}
	}
	if m.FitPasses != 1 || m2.FitSample != nil || m.Totals.RowsIn != m2.Totals.RowsIn || m.Totals.Rejected != m2.Totals.Rejected {
		t.Errorf("manifests: fit passes %d, totals %+v and %+v", m.FitPasses, m.Totals, m2.Totals)
	}
	if !slices.EqualFunc(m.Rejections.First, m2.Rejections.First, func(a, b rejectedLine) bool { return a.Line == b.Line && a.Text == b.Text }) {
		t.Errorf("rejected rows %+v, want %+v", m.Rejections.First, m2.Rejections.First)
	}
	return m, got, nil
}

// fitAttempts counts the manifest's fit attempts and the transform
// attempts by outcome.
func fitAttempts(m *Manifest) (fit int, transform map[string]int) {
	transform = map[string]int{}
	for _, a := range m.Attempts {
		if a.Phase == PhaseFit {
			fit++
		} else {
			transform[a.Outcome]++
		}
	}
	return fit, transform
}

// TestSampleFitVerified: on input whose first splits order the labels as
// the whole does, the fit runs on two splits and the output is that of a
// fit of every split and of a run with that model given.
func TestSampleFitVerified(t *testing.T) {
	data := bytes.Join(interleaved(abaloneLines(t)), nil)
	for _, mode := range []SplitMode{SplitHash, SplitSpark} {
		m, out, err := runBoth(t, data, Settings{SplitMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		want := fitSample{Splits: 2, Of: len(m.Parts), Outcome: sampleVerified}
		if m.FitSample == nil || *m.FitSample != want || want.Of < 10 {
			t.Errorf("%s: fit_sample %+v, want %+v", mode, m.FitSample, want)
		}
		if fit, tr := fitAttempts(m); fit != 2 || tr[attemptDone] != len(m.Parts) || len(tr) != 1 {
			t.Errorf("%s: %d fit attempts, transform attempts %v", mode, fit, tr)
		}
		job, store := dataJob(t, data, Settings{SplitMode: mode})
		given, err := Run(context.Background(), job, store, store, &CoordinatorOptions{Workers: 2, Model: m.Model})
		if err != nil {
			t.Fatal(err)
		}
		if given.FitSample != nil || given.FitPasses != 0 {
			t.Errorf("a run with a model given: fit_sample %+v, fit passes %d", given.FitSample, given.FitPasses)
		}
		for k, v := range outputs(store) {
			if k != ModelKey && !bytes.Equal(v, out[k]) {
				t.Errorf("%s differs from a run with the model given", k)
			}
		}
	}
}

// TestSampleFitUnseenLabel: input sorted by label gives the sample one
// label; the transform meets another, abandons the sample's model, fits
// the rest of the input and writes the exact output.
func TestSampleFitUnseenLabel(t *testing.T) {
	lines := abaloneLines(t)
	sort.SliceStable(lines, func(i, j int) bool { return lines[i][0] > lines[j][0] }) // M, I, F
	for _, mode := range []SplitMode{SplitHash, SplitSpark} {
		m, _, err := runBoth(t, bytes.Join(lines, nil), Settings{SplitMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if s := m.FitSample; s == nil || s.Outcome != sampleAbandoned || !strings.Contains(s.Reason, "which the sample's model does not") {
			t.Errorf("%s: fit_sample %+v, want abandoned at an unseen label", mode, s)
		}
		fit, tr := fitAttempts(m)
		if n := len(m.Parts); fit != n || tr[attemptDone] < n || tr[attemptAbandoned] < 1 {
			t.Errorf("%s: %d fit attempts (want the sample's 2 and 8 more), transform attempts %v", mode, fit, tr)
		}
	}
}

// TestSampleFitOtherOrder: the first splits hold every label but in
// another frequency order than the whole input: the transform is done
// again with the exact model.
func TestSampleFitOtherOrder(t *testing.T) {
	lines := abaloneLines(t)
	f, rest := firstF(lines, 700)
	// 700 F rows first, among the first 100 of the others: the sample
	// orders F first; the whole input M, I, F.
	data := slices.Concat(rest[:50], f, rest[50:])
	for _, mode := range []SplitMode{SplitHash, SplitSpark} {
		m, _, err := runBoth(t, bytes.Join(data, nil), Settings{SplitMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if s := m.FitSample; s == nil || s.Outcome != sampleRedone || !strings.Contains(s.Reason, `the sample orders its labels ["F"`) {
			t.Errorf("%s: fit_sample %+v, want redone", mode, s)
		}
		if labels, _ := m.Model.Labels("sex"); !slices.Equal(labels, []string{"M", "I", "F"}) {
			t.Errorf("%s: model labels %q", mode, labels)
		}
		gens := map[int]int{}
		for _, a := range m.Attempts {
			gens[a.Gen]++
		}
		if n := len(m.Parts); gens[1] != n || gens[2] != n {
			t.Errorf("%s: transform attempts by generation %v, want 10 of 1 and 10 of 2", mode, gens)
		}
	}
}

// TestSampleFitInvalidRows: invalid rows after the sample, under the
// error policy, fail the job with the first of them as the fit of every
// split does; under the skip policy the rejected rows and their line
// numbers are those of the exact path.
func TestSampleFitInvalidRows(t *testing.T) {
	lines := abaloneLines(t)
	bad := slices.Clone(lines)
	bad[3000] = []byte("M,0.4,oops,0.1,0.5,0.2,0.1,0.15,9\n")
	bad[2500] = []byte("M,0.4,0.3,0.1,0.5,0.2,0.1,0.15\n")
	bad[3900] = []byte("Q,0.4,0.3,0.1,0.5,0.2,0.1,0.15,x\n")
	data := bytes.Join(bad, nil)
	for _, mode := range []SplitMode{SplitHash, SplitSpark} {
		_, _, err := runBoth(t, data, Settings{SplitMode: mode})
		first := "in/abalone-00.csv: line 2501: expected 9 fields"
		if mode == SplitSpark {
			first = "in/abalone-05.csv: line 322: expected 9 fields" // objects of 20 kB
		}
		if err == nil || !strings.Contains(err.Error(), first) {
			t.Errorf("%s, error policy: %v, want %s", mode, err, first)
		}
		m, _, err := runBoth(t, data, Settings{SplitMode: mode, OnInvalid: PolicySkip})
		if err != nil {
			t.Fatal(err)
		}
		if m.Totals.Rejected != 3 || len(m.Rejections.First) != 3 || !strings.Contains(first, fmt.Sprintf("line %d:", m.Rejections.First[0].Line)) {
			t.Errorf("%s, skip policy: rejected %d, first %+v", mode, m.Totals.Rejected, m.Rejections.First)
		}
		if s := m.FitSample; s == nil || s.Outcome != sampleAbandoned || !strings.Contains(s.Reason, "invalid row") {
			t.Errorf("%s: fit_sample %+v, want abandoned at an invalid row", mode, s)
		}
	}
	// An invalid row in the sample: the sample is not trusted.
	bad = slices.Clone(lines)
	bad[10] = []byte("M,0.4,0.3,0.1,0.5,0.2,0.1,0.15,NaNx\n")
	m, _, err := runBoth(t, bytes.Join(bad, nil), Settings{OnInvalid: PolicySkip})
	if err != nil {
		t.Fatal(err)
	}
	if s := m.FitSample; s == nil || s.Outcome != sampleAbandoned || s.Reason != "the sample holds invalid rows" {
		t.Errorf("fit_sample %+v, want abandoned: the sample holds invalid rows", s)
	}
	if _, tr := fitAttempts(m); tr[attemptDone] != len(m.Parts) || len(tr) != 1 {
		t.Errorf("transform attempts %v, want 10 done", tr)
	}
}

// TestAbandonedGenerationRefused: reports of the speculative transform's
// tasks that come after it was abandoned are refused, in the fit that
// follows and in the next transform generation, and what they staged is
// discarded; leases and heartbeats tell workers the generation is stale.
func TestAbandonedGenerationRefused(t *testing.T) {
	lines := abaloneLines(t)
	sort.SliceStable(lines, func(i, j int) bool { return lines[i][0] > lines[j][0] })
	job, store := dataJob(t, bytes.Join(lines, nil), Settings{})
	clock := newFakeClock()
	c := mustCoordinator(t, job, store, store, &CoordinatorOptions{LeaseTTL: 10 * time.Second, Now: clock.Now})
	a := join(t, c, "a")
	finishPhase(t, c, store, a) // the sample's fit: 2 splits
	if n := len(c.Manifest().Attempts); n != 2 {
		t.Fatalf("%d fit attempts, want the sample's 2", n)
	}
	resp := lease(t, c, a, 10)
	if resp.Model == nil || len(resp.Tasks) != 10 || !resp.Tasks[0].Speculative || resp.Tasks[0].Gen != 1 {
		t.Fatalf("transform lease %+v, want 10 speculative tasks of generation 1 with the model", resp.Tasks)
	}
	held := execute(t, c, store, a, resp.Tasks[0]) // split 0 holds only the sample's label
	if held.Error != "" || held.Result.Stats == nil {
		t.Fatalf("split 0: %+v", held)
	}
	last := execute(t, c, store, a, resp.Tasks[9]) // only F: unseen
	if !last.Mispredicted || !strings.Contains(last.Error, `label "F"`) {
		t.Fatalf("split 9: mispredicted %v, error %q", last.Mispredicted, last.Error)
	}
	if p := report(t, c, last); p != PhaseFit {
		t.Fatalf("phase %s after the mispredicted report, want fit", p)
	}
	staged := store.stageCount()
	r, err := c.report(context.Background(), held)
	if err != nil || r.Accepted || !strings.Contains(r.Reason, "transform phase is over") {
		t.Fatalf("late report: %+v, %v", r, err)
	}
	if store.stageCount() >= staged {
		t.Errorf("the refused report's parts are still staged (%d, were %d)", store.stageCount(), staged)
	}
	hb, _ := c.heartbeat(context.Background(), &heartbeatRequest{Worker: a})
	fitLease := lease(t, c, a, 100)
	if hb.Stale != 1 || fitLease.Stale != 1 || len(fitLease.Tasks) != 8 || fitLease.Tasks[0].Split != 2 {
		t.Fatalf("after abandoning: heartbeat stale %d, lease stale %d, %d fit tasks from split %d; want 8 from split 2",
			hb.Stale, fitLease.Stale, len(fitLease.Tasks), fitLease.Tasks[0].Split)
	}
	for _, task := range fitLease.Tasks {
		report(t, c, execute(t, c, store, a, task))
	}
	if p := c.snapshot().Phase; p != PhaseTransform {
		t.Fatalf("phase %s, want transform", p)
	}
	held2 := execute(t, c, store, a, resp.Tasks[1])
	if r, _ := c.report(context.Background(), held2); r.Accepted || !strings.Contains(r.Reason, "generation 1 is over") {
		t.Errorf("generation 1's report in generation 2: %+v", r)
	}
	finishPhase(t, c, store, a)
	m := c.Manifest()
	if s := m.FitSample; s == nil || s.Outcome != sampleAbandoned {
		t.Errorf("fit_sample %+v", s)
	}
	if labels, _ := m.Model.Labels("sex"); !slices.Equal(labels, []string{"M", "I", "F"}) {
		t.Errorf("model labels %q", labels)
	}
}

// indexerSpec indexes sex (handleInvalid keep, which maps a label the
// model does not hold to an extra index) and buckets length, with no
// stage fitted but the StringIndexer.
const indexerSpec = `{"columns":[{"name":"sex","type":"string"},{"name":"length","type":"double"},{"name":"diameter","type":"double"},
{"name":"height","type":"double"},{"name":"whole_weight","type":"double"},{"name":"shucked_weight","type":"double"},
{"name":"viscera_weight","type":"double"},{"name":"shell_weight","type":"double"},{"name":"rings","type":"double"}],
"stages":[{"stage":"StringIndexer","inputCol":"sex","outputCol":"sex_idx","handleInvalid":"keep"},
 {"stage":"OneHotEncoder","inputCol":"sex_idx","outputCol":"sex_vec"},
 {"stage":"Bucketizer","inputCol":"length","outputCol":"len_b","splits":["-Infinity",0.3,0.5,"Infinity"]},
 {"stage":"VectorAssembler","inputCols":["sex_vec","len_b","height"],"outputCol":"features"}],
"label":"rings","splits":[{"name":"train","weight":0.8},{"name":"validation","weight":0.2}]}`

// TestSampleFitStages: a spec whose stages fit only a StringIndexer fits
// on a sample like the flat form, and ends as the fit of every split
// does: verified, abandoned at a label the sample did not see (though the
// indexer would map it to its extra index), redone for another order; a
// spec with another fitted stage fits every split.
func TestSampleFitStages(t *testing.T) {
	lines := abaloneLines(t)
	sorted := slices.Clone(lines)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i][0] > sorted[j][0] })
	f, rest := firstF(lines, 700)
	for _, tc := range []struct {
		name    string
		data    [][]byte
		outcome string
	}{
		{"verified", interleaved(lines), sampleVerified},
		{"unseen", sorted, sampleAbandoned},
		{"other order", slices.Concat(rest[:50], f, rest[50:]), sampleRedone},
	} {
		for _, mode := range []SplitMode{SplitHash, SplitSpark} {
			m, _, err := runBothSpec(t, indexerSpec, bytes.Join(tc.data, nil), Settings{SplitMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if s := m.FitSample; s == nil || s.Outcome != tc.outcome || tc.outcome == sampleAbandoned && !strings.Contains(s.Reason, `holds the label "I"`) {
				t.Errorf("%s, %s: fit_sample %+v, want %s", tc.name, mode, s, tc.outcome)
			}
		}
	}
	store := newMemStore()
	m, err := Run(context.Background(), stagesJob(t, store), store, store, &CoordinatorOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if m.FitSample != nil {
		t.Errorf("a spec with a MinMaxScaler: fit_sample %+v, want a fit of every split", m.FitSample)
	}
}

// firstF splits lines into the first n of label F and the rest, each in
// input order.
func firstF(lines [][]byte, n int) (f, rest [][]byte) {
	for _, l := range lines {
		if l[0] == 'F' && len(f) < n {
			f = append(f, l)
		} else {
			rest = append(rest, l)
		}
	}
	return f, rest
}
