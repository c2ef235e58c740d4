package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/shardprep/shardprep/features"
)

// The layout of an output root. A job writes one part per input split in
// each split's folder (train/part-00000, ...) and, with the skip policy, in
// _rejected/; at commit the model and the manifest under _shardprep/, then
// last a _SUCCESS marker in each split's folder. Every name that starts
// with "_" is shardprep's.
const (
	ModelKey    = "_shardprep/model.json"
	ManifestKey = "_shardprep/manifest.json"
	SuccessName = "_SUCCESS"
)

// rejectedFolder holds the rows refused under the skip policy.
const rejectedFolder = "_rejected"

// metaFolder holds the job's metadata; a folder that has one is an output.
var metaFolder = path.Dir(ManifestKey)

// ClusterSecretKey is where a container coordinator publishes the cluster
// secret of the job named job for its workers. It is not part of the
// output: CheckOutput ignores it.
func ClusterSecretKey(job string) string { return metaFolder + "/cluster-secret-" + job }

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
	folders := append(splitNames(spec), rejectedFolder)
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

// Output is an output root as these rules read it; *storage.Bucket is one.
type Output interface {
	// Keys lists the keys that start with prefix, sorted.
	Keys(ctx context.Context, prefix string) ([]string, error)
	NewRangeReader(ctx context.Context, key, etag string, offset, length int64) (io.ReadCloser, error)
	Delete(ctx context.Context, key string) error
}

// CheckOutput readies the output root out, called name in messages, for
// a job. It refuses one that already holds objects (a published cluster
// secret aside), unless overwrite is set: then it deletes them, the
// _SUCCESS markers first, so that the old output stops counting as
// committed before it disappears.
func CheckOutput(ctx context.Context, out Output, name string, overwrite bool, log *slog.Logger) error {
	keys, err := out.Keys(ctx, "")
	if err != nil {
		return fmt.Errorf("output %s: %w", name, err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, ClusterSecretKey("")) })
	if len(keys) == 0 {
		return nil
	}
	if !overwrite {
		return fmt.Errorf("output %s already exists (%d objects); choose another --output or pass --overwrite to replace it", name, len(keys))
	}
	log.Info("overwriting output", "output", name, "objects", len(keys))
	isMarker := func(k string) bool { return k == SuccessName || strings.HasSuffix(k, "/"+SuccessName) }
	for pass := range 2 {
		for _, k := range keys {
			if isMarker(k) != (pass == 0) {
				continue
			}
			if err := out.Delete(ctx, k); err != nil {
				return fmt.Errorf("output %s: removing %s: %w", name, k, err)
			}
		}
	}
	return nil
}

// Committed reports whether out holds the committed output of the job
// named job: a manifest naming it and every split's _SUCCESS marker.
func Committed(ctx context.Context, out Output, job string) bool {
	rc, err := out.NewRangeReader(ctx, ManifestKey, "", 0, -1)
	if err != nil {
		return false
	}
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	rc.Close()
	if err != nil {
		return false
	}
	var m Manifest
	if json.Unmarshal(data, &m) != nil || m.Job != job || m.Spec == nil || len(m.Spec.Splits) == 0 {
		return false
	}
	for _, s := range m.Spec.Splits {
		marker := s.Name + "/" + SuccessName
		keys, err := out.Keys(ctx, marker)
		if err != nil || !slices.Contains(keys, marker) {
			return false
		}
	}
	return true
}

// OutputFolders returns the folders of a listing (keys relative to its
// root) that hold a shardprep output, with a trailing slash: those with a
// _shardprep/ folder beside their splits. Reading a prefix again leaves
// them out, so that a job does not read the outputs of earlier ones.
func OutputFolders(keys []string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, k := range keys {
		i := strings.Index(k, "/"+metaFolder+"/")
		if i < 0 || seen[k[:i+1]] {
			continue
		}
		seen[k[:i+1]] = true
		dirs = append(dirs, k[:i+1])
	}
	return dirs
}
