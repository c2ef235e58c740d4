package pipeline_test

import (
	"context"
	"fmt"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
)

const exampleSpec = `{"columns":[{"name":"sex","type":"string"},{"name":"length","type":"double"},{"name":"rings","type":"double"}],
"categorical":["sex"],"numeric":["length"],"label":"rings",
"splits":[{"name":"train","weight":0.8},{"name":"validation","weight":0.2}]}`

// A job run in this process: its parts are committed under the output
// root, and the manifest counts the rows.
func ExampleNewRun() {
	store := pipeline.NewMemStore()
	data := []byte("M,0.455,15\nF,0.53,7\nI,0.33,9\nM,0.44,10\nF,0.51,12\n")
	store.Put("in.csv", data)
	spec, err := features.ParseSpec([]byte(exampleSpec))
	if err != nil {
		panic(err)
	}
	in := []pipeline.Object{{URL: "in.csv", Name: "in.csv", Size: int64(len(data))}}
	job, err := pipeline.NewJob(spec, in, &pipeline.Settings{Name: "example", Seed: 1})
	if err != nil {
		panic(err)
	}
	c, err := pipeline.NewRun(job, store, store, nil)
	if err != nil {
		panic(err)
	}
	m, err := c.Run(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Totals.RowsIn, "rows,", m.Totals.RowsOut["train"]+m.Totals.RowsOut["validation"], "written")
	fmt.Println(pipeline.Committed(context.Background(), store, "example"))
	// Output:
	// 5 rows, 5 written
	// true
}

// An invalid row under the default policy fails the job; the error says
// where the row is and what is wrong with it.
func ExampleNewRun_invalidRow() {
	store := pipeline.NewMemStore()
	data := []byte("M,0.455,15\nF,0.53,7\nI,short,9\nM,0.44,10\n")
	store.Put("in.csv", data)
	spec, err := features.ParseSpec([]byte(exampleSpec))
	if err != nil {
		panic(err)
	}
	in := []pipeline.Object{{URL: "in.csv", Name: "in.csv", Size: int64(len(data))}}
	job, err := pipeline.NewJob(spec, in, &pipeline.Settings{Seed: 1})
	if err != nil {
		panic(err)
	}
	c, err := pipeline.NewRun(job, store, store, nil)
	if err != nil {
		panic(err)
	}
	_, err = c.Run(context.Background())
	fmt.Println(err)
	// Output: in.csv: line 3, column "length": not a number: "short"
}

// Folders that hold an earlier output are left out when a prefix is read
// again.
func ExampleOutputFolders() {
	keys := []string{"a.csv", "out/_shardprep/manifest.json", "out/train/part-00000", "runs/1/_shardprep/model.json"}
	fmt.Println(pipeline.OutputFolders(keys))
	// Output: [out/ runs/1/]
}
