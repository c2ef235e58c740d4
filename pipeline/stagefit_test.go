package pipeline

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// stagesSpec is the Abalone columns through Spark ML stages: a scaler
// over an assembled vector, fitted in a second pass.
const stagesSpec = `{"columns":[{"name":"sex","type":"string"},{"name":"length","type":"double"},{"name":"diameter","type":"double"},
{"name":"height","type":"double"},{"name":"whole_weight","type":"double"},{"name":"shucked_weight","type":"double"},
{"name":"viscera_weight","type":"double"},{"name":"shell_weight","type":"double"},{"name":"rings","type":"double"}],
"stages":[{"stage":"StringIndexer","inputCol":"sex","outputCol":"sex_idx"},
 {"stage":"OneHotEncoder","inputCol":"sex_idx","outputCol":"sex_vec"},
 {"stage":"VectorAssembler","inputCols":["sex_vec","length","height"],"outputCol":"raw"},
 {"stage":"MinMaxScaler","inputCol":"raw","outputCol":"features"}],
"label":"rings","splits":[{"name":"train","weight":0.8},{"name":"validation","weight":0.2}]}`

func stagesJob(t *testing.T, store *memStore) *Job {
	t.Helper()
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		t.Fatal(err)
	}
	store.objects["in/abalone.csv"] = data
	spec, err := features.ParseSpec([]byte(stagesSpec))
	if err != nil {
		t.Fatal(err)
	}
	job, err := NewJob(spec, []Object{{URL: "in/abalone.csv", Name: "abalone.csv", Size: int64(len(data)), Root: "in/"}},
		&Settings{Seed: 5, SplitSize: 20000})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// TestFitPasses: the coordinator runs a second fit pass over every split
// with the model of the first, refuses a late report of the first pass,
// and then transforms.
func TestFitPasses(t *testing.T) {
	store := newMemStore()
	clock := newFakeClock()
	c := mustCoordinator(t, stagesJob(t, store), store, store, &CoordinatorOptions{LeaseTTL: 10 * time.Second, Now: clock.Now})
	w := join(t, c, "w")
	first := lease(t, c, w, 100)
	if first.Model != nil || len(first.Tasks) != len(c.job.Splits) || first.Tasks[0].Pass != 0 {
		t.Fatalf("pass 1 lease: %d tasks, pass %d, model %v", len(first.Tasks), first.Tasks[0].Pass, first.Model != nil)
	}
	var reports []*reportRequest
	for _, task := range first.Tasks {
		r := execute(t, c, store, w, task)
		reports = append(reports, r)
		report(t, c, r)
	}
	second := lease(t, c, w, 100)
	if second.State != PhaseFit || len(second.Tasks) != len(c.job.Splits) || second.Tasks[0].Pass != 2 || second.Model == nil {
		t.Fatalf("pass 2 lease: state %s, %d tasks, model %v", second.State, len(second.Tasks), second.Model != nil)
	}
	if total, done := second.Model.Passes(); total != 2 || done != 1 {
		t.Errorf("the model sent with pass 2 has %d of %d passes", done, total)
	}
	// A report of pass 1 again: refused, not merged into pass 2.
	resp, err := c.report(context.Background(), reports[0])
	if err != nil || resp.Accepted || !strings.Contains(resp.Reason, "fit pass 1 is over") {
		t.Fatalf("late pass 1 report: %+v, %v", resp, err)
	}
	for _, task := range second.Tasks {
		report(t, c, execute(t, c, store, w, task))
	}
	if p := c.snapshot().Phase; p != PhaseTransform {
		t.Fatalf("after pass 2 the job is %s", p)
	}
	finishPhase(t, c, store, w)
	m := c.Manifest()
	if m.FitPasses != 2 {
		t.Errorf("manifest fit passes %d", m.FitPasses)
	}
}

// TestStagesRunAllocator runs a stages job in process and checks that
// its memory is all given back.
func TestStagesRunAllocator(t *testing.T) {
	store := newMemStore()
	job := stagesJob(t, store)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	if _, err := Run(context.Background(), job, store, store, &CoordinatorOptions{Workers: 3, Mem: mem}); err != nil {
		t.Fatal(err)
	}
}
