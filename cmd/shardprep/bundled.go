package main

import (
	_ "embed"

	"github.com/shardprep/shardprep/features"
)

// The bundled sample is the Abalone dataset from the UCI Machine Learning
// Repository (CC BY 4.0): 4177 headerless rows.
//
//go:embed sample/abalone.csv
var bundledCSV []byte

// The default spec is the Abalone job: sex indexed and one-hot encoded,
// then the seven measures, label rings, split 0.8/0.2.
//
//go:embed sample/abalone.spec.json
var defaultSpecJSON []byte

const (
	bundledRoot = "bundled:"
	bundledName = "abalone.csv"
)

func defaultSpec() *features.Spec {
	s, err := features.ParseSpec(defaultSpecJSON)
	if err != nil {
		panic("bundled spec is invalid: " + err.Error()) // a build defect, caught by tests
	}
	return s
}
