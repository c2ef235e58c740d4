package features_test

import (
	"fmt"
	"math"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

func ExampleAppendPyFloat() {
	for _, v := range []float64{15, 0.30000000000000004, 0.0001, 1e-05, 1e16, 1234567890123456.8, math.Copysign(0, -1), math.Inf(1), math.NaN()} {
		fmt.Println(string(features.AppendPyFloat(nil, v)))
	}
	// Output:
	// 15.0
	// 0.30000000000000004
	// 0.0001
	// 1e-05
	// 1e+16
	// 1234567890123456.8
	// -0.0
	// inf
	// nan
}

// Example fits a model over a small batch and prints the transformed lines.
func Example() {
	spec, err := features.ParseSpec([]byte(`{
	  "columns": [{"name": "colour", "type": "string"}, {"name": "size", "type": "double"}, {"name": "price", "type": "double"}],
	  "categorical": ["colour"], "numeric": ["size"], "label": "price",
	  "splits": [{"name": "train", "weight": 0.8}, {"name": "validation", "weight": 0.2}]}`))
	if err != nil {
		panic(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, spec.Schema())
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"red", "blue", "red", "green"}, nil)
	b.Field(1).(*array.Float64Builder).AppendValues([]float64{1.5, 2, 0.25, 3}, nil)
	b.Field(2).(*array.Float64Builder).AppendValues([]float64{10, 12.5, 9, 1e-05}, nil)
	rec := b.NewRecord()
	defer rec.Release()

	stats := features.NewStats(spec)
	if err := stats.Add(rec); err != nil {
		panic(err)
	}
	model, err := stats.Model()
	if err != nil {
		panic(err)
	}
	labels, _ := model.Labels("colour")
	fmt.Println("colour labels:", labels, "width:", model.Width())

	out, err := model.Transform(rec, memory.DefaultAllocator)
	if err != nil {
		panic(err)
	}
	defer out.Release()
	fmt.Print(string(features.AppendRows(nil, out, []int{0, 1, 2, 3})))
	// Output:
	// colour labels: [red blue green] width: 3
	// 10.0,1.0,0.0,1.5
	// 12.5,0.0,1.0,2.0
	// 9.0,1.0,0.0,0.25
	// 1e-05,0.0,0.0,3.0
}
