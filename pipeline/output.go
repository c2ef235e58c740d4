package pipeline

import (
	"fmt"

	"github.com/shardprep/shardprep/features"
)

// The layout of an output root. A job writes one part per input split in
// each split's folder (train/part-00000, ...) and, with the skip policy, in
// _rejected/; at commit the model and the manifest under _shardprep/, then
// last a _SUCCESS marker in each split's folder. Every name that starts
// with "_" is shardprep's.
const (
	ModelKey       = "_shardprep/model.json"
	ManifestKey    = "_shardprep/manifest.json"
	SuccessName    = "_SUCCESS"
	RejectedFolder = "_rejected" // rows refused under the skip policy
)

// partKey is the key of split i's part under the named output folder.
func partKey(folder string, split int) string {
	return fmt.Sprintf("%s/part-%05d", folder, split)
}

// splitNames returns the names of the spec's splits: its output folders.
func splitNames(spec *features.Spec) []string {
	names := make([]string, len(spec.Splits))
	for i, s := range spec.Splits {
		names[i] = s.Name
	}
	return names
}

// outputKeys returns every key a job of spec over n splits may write:
// the markers first, so that a partial output stops counting as
// committed before anything else goes.
func outputKeys(spec *features.Spec, n int) []string {
	var keys []string
	folders := append(splitNames(spec), RejectedFolder)
	for _, f := range folders {
		keys = append(keys, f+"/"+SuccessName)
	}
	keys = append(keys, ManifestKey, ModelKey)
	for _, f := range folders {
		for i := range n {
			keys = append(keys, partKey(f, i))
		}
	}
	return keys
}
