// Package sample is the dataset built into shardprep: the Abalone dataset
// from the UCI Machine Learning Repository (CC BY 4.0), 4177 headerless
// rows (CSV), the input of a job given none; its spec (Spec), the spec of
// a job given none: sex indexed and one-hot encoded, then the seven
// measures, label rings, split 0.8/0.2; and Generate, which writes as
// many rows like them as asked.
package sample

import (
	_ "embed"

	"github.com/shardprep/shardprep/features"
)

// CSV is the Abalone dataset.
//
//go:embed abalone.csv
var CSV []byte

//go:embed abalone.spec.json
var specJSON []byte

// Spec returns the Abalone job's spec.
func Spec() *features.Spec {
	s, err := features.ParseSpec(specJSON)
	if err != nil {
		panic("bundled spec is invalid: " + err.Error()) // a build defect, caught by tests
	}
	return s
}
