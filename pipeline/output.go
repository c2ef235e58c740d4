package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/format"
)

// The layout of an output root. A job writes one part per input split in
// each split's folder (train/part-00000, ...; train/part-00000.parquet in
// the parquet format) and, with the skip policy, in
// _rejected/ (text, whatever the format); at commit the model, the slot
// names, the manifest and the report under _shardprep/, then last a
// _SUCCESS marker in each split's folder. Every name that starts with "_"
// is shardprep's.
const (
	ModelKey    = "_shardprep/model.json"
	FeaturesKey = "_shardprep/features.json"
	ManifestKey = "_shardprep/manifest.json"
	ReportKey   = "_shardprep/report.html"
	SuccessName = "_SUCCESS"
	// ClaimKey is the claim of the job that holds an output: written
	// exclusively before the job writes anything, removed when it has
	// ended.
	ClaimKey = "_shardprep/claim.json"
)

// rejectedFolder holds the rows refused under the skip policy.
const rejectedFolder = "_rejected"

// metaFolder holds the job's metadata; a folder that has one is an output.
var metaFolder = path.Dir(ManifestKey)

// ClusterSecretKey is where a container coordinator publishes the cluster
// secret of the job named job for its workers. It is not part of the
// output: ClaimOutput leaves it, and clean removes one left behind.
func ClusterSecretKey(job string) string { return metaFolder + "/cluster-secret-" + job }

// partKey is the key of split i's part under the named output folder;
// ext is the extension of the output format's parts, which the parts of
// rejected rows do not take.
func partKey(folder string, split int, ext string) string {
	if folder == rejectedFolder {
		ext = ""
	}
	return fmt.Sprintf("%s/part-%05d%s", folder, split, ext)
}

// outputFormat is the output format of spec, which must be valid.
func outputFormat(spec *features.Spec) features.OutputFormat {
	f, _ := features.ParseOutputFormat(spec.Output.Format)
	return f
}

// partExtension is the extension of the parts of a job of spec.
func partExtension(spec *features.Spec) string {
	return format.Extension(outputFormat(spec))
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
	return layoutKeys(append(splitNames(spec), rejectedFolder), n, partExtension(spec))
}

// layoutKeys returns the keys a job with these folders, n splits and
// parts of extension ext may write: the markers first, then the metadata,
// then the parts.
func layoutKeys(folders []string, n int, ext string) []string {
	var keys []string
	for _, f := range folders {
		keys = append(keys, f+"/"+SuccessName)
	}
	keys = append(keys, ManifestKey, ModelKey, FeaturesKey, ReportKey)
	for _, f := range folders {
		for i := range n {
			keys = append(keys, partKey(f, i, ext))
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
	// Create writes the object at key only if there is none; else it
	// fails with an error wrapping fs.ErrExist (a job's claim).
	Create(ctx context.Context, key string, data []byte) error
}

// Committed reports whether out holds the committed output of the job
// named job: a manifest naming it and every split's _SUCCESS marker.
func Committed(ctx context.Context, out Output, job string) bool {
	m, err := readManifest(ctx, out)
	return err == nil && m.Job == job && committed(ctx, out, m)
}

// committed reports whether every split of m's spec has its marker.
func committed(ctx context.Context, out Output, m *Manifest) bool {
	if m.Spec == nil || len(m.Spec.Splits) == 0 {
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

// readManifest reads the manifest of out; a missing one is an error
// wrapping fs.ErrNotExist.
func readManifest(ctx context.Context, out Output) (*Manifest, error) {
	var m Manifest
	if err := readJSON(ctx, out, ManifestKey, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// readJSON reads the object at key of out into v.
func readJSON(ctx context.Context, out Output, key string, v any) error {
	rc, err := out.NewRangeReader(ctx, key, "", 0, -1)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	rc.Close()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// isPartName reports whether name is a part's: "part-" and 5 or more
// digits, and ".parquet" for a parquet part.
func isPartName(name string) bool {
	digits, ok := strings.CutPrefix(name, "part-")
	if ext := format.Extension(features.FormatParquet); strings.HasSuffix(digits, ext) {
		digits = strings.TrimSuffix(digits, ext)
	}
	if !ok || len(digits) < 5 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// SplitFolders returns the split folders at the top of a listing (keys
// relative to an output root), in key order: the folders holding
// part-NNNNN files, other than _rejected. An output root gives its
// splits' names ("train", "validation").
func SplitFolders(keys []string) []string {
	var dirs []string
	for _, k := range keys {
		dir, base, ok := strings.Cut(k, "/")
		if ok && isPartName(base) && dir != rejectedFolder && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// OutputFolders returns the folders of a listing (keys relative to its
// root) that hold a shardprep output, committed or not, with a trailing
// slash ("" for the listed root itself): those with a _shardprep/ folder
// (every job claims its output there before it writes), and those whose
// split folders of part-NNNNN files sit next to a _rejected/ folder or
// hold a _SUCCESS marker. Reading a prefix again leaves them out, so that
// a job does not read the outputs of earlier or running ones.
func OutputFolders(keys []string) []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(dir string) {
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	parts := map[string]bool{}   // output folders by their parts' folders
	markers := map[string]bool{} // folders holding a _SUCCESS marker
	for _, k := range keys {
		if i := strings.Index("/"+k, "/"+metaFolder+"/"); i >= 0 {
			add(k[:i])
		}
		dir, base := path.Split(k)
		switch {
		case base == SuccessName:
			markers[dir] = true
		case isPartName(base) && dir != "":
			parts[dir] = true
		}
	}
	for _, k := range keys {
		dir, base := path.Split(k)
		if !isPartName(base) || dir == "" {
			continue
		}
		out, _ := path.Split(strings.TrimSuffix(dir, "/"))
		if markers[dir] || parts[out+rejectedFolder+"/"] {
			add(out)
		}
	}
	return dirs
}

// takeoverKey is created, exclusively, by the one job that may take over
// the stale claim of the run runID.
func takeoverKey(runID string) string { return metaFolder + "/takeover-" + runID }

// claimRecord is the claim's record (ClaimKey): it names the job that
// holds an output, and what it may write there.
type claimRecord struct {
	RunID   string    `json:"run_id"`
	Job     string    `json:"job_name"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Folders are the job's split folders and _rejected; each may get
	// part-NNNNN for every split number below Splits, the split folders'
	// with the extension Extension.
	Folders   []string `json:"folders"`
	Splits    int      `json:"splits"`
	Extension string   `json:"part_extension,omitempty"`
}

func (c *claimRecord) String() string {
	return fmt.Sprintf("job %s (run %s) on host %s, pid %d, since %s", c.Job, c.RunID, c.Host, c.PID,
		c.Started.UTC().Format(time.RFC3339))
}

// keys returns every key the claiming job may write, the claim last.
func (c *claimRecord) keys() []string {
	return append(layoutKeys(c.Folders, c.Splits, c.Extension), ClaimKey)
}

// dead reports whether the claiming process is known to have ended: it
// ran on this host and its pid no longer runs.
func (c *claimRecord) dead(o *ClaimOptions) bool {
	return c.Host == o.Host && c.PID > 0 && !o.Alive(c.PID)
}

// over reports whether the claiming job is known to have ended: its
// process is dead, or its run committed out (a job stopped between its
// commit and giving the claim back, on any host).
func (c *claimRecord) over(ctx context.Context, out Output, o *ClaimOptions) bool {
	if c.dead(o) {
		return true
	}
	m, err := readManifest(ctx, out)
	return err == nil && m.RunID == c.RunID && c.RunID != "" && committed(ctx, out, m)
}

// ClaimOptions configures ClaimOutput and FindLeftovers. A nil
// *ClaimOptions means the defaults.
type ClaimOptions struct {
	// Name is the output for messages (default: "the output").
	Name string
	// Overwrite lets ClaimOutput delete what an earlier shardprep job
	// wrote there (see ClaimOutput).
	Overwrite bool
	// Reads reports whether the job reads the object at a key of the
	// output; such an object is never deleted. nil: none.
	Reads func(key string) bool
	// Host and Alive say where this process runs and whether a process of
	// this host runs (default: os.Hostname, and a signal-0 probe).
	Host  string
	Alive func(pid int) bool
	Log   *slog.Logger
}

func (o *ClaimOptions) withDefaults() *ClaimOptions {
	var c ClaimOptions
	if o != nil {
		c = *o
	}
	if c.Name == "" {
		c.Name = "the output"
	}
	if c.Reads == nil {
		c.Reads = func(string) bool { return false }
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.Alive == nil {
		c.Alive = processAlive
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return &c
}

// processAlive reports whether the process pid runs on this host; when it
// cannot tell, it says it does.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH)
}

// Claim is an output held by a job: ClaimOutput takes it, Release gives
// it back.
type Claim struct {
	out      Output
	name     string
	data     []byte // the claim as written
	takeover string // the takeover key this job created, if any
	owned    map[string]bool
}

// ClaimOutput claims the output root out for job and readies it. The
// claim (ClaimKey, naming the run, job, host and pid) is created
// exclusively: while another job holds it, ClaimOutput fails naming the
// holder, except that the claim of a process of this host that no longer
// runs is taken over (and logged). Then the output must hold nothing but
// the claim and published cluster secrets, or, with opts.Overwrite, what
// earlier shardprep jobs wrote there, as their manifest and claim say
// (their split folders' parts and _SUCCESS markers, _rejected/ and
// _shardprep/): those are deleted, the markers first and the manifest
// last. Anything else is refused, listing a few keys, as is an object the
// job reads. On any error the claim is given back.
func ClaimOutput(ctx context.Context, out Output, job *Job, opts *ClaimOptions) (*Claim, error) {
	o := opts.withDefaults()
	c := claimRecord{RunID: job.RunID, Job: job.Name, Host: o.Host, PID: os.Getpid(), Started: time.Now().UTC(),
		Folders: append(splitNames(job.Spec), rejectedFolder), Splits: len(job.Splits), Extension: partExtension(job.Spec)}
	data, err := indentedJSON(c)
	if err != nil {
		return nil, err
	}
	held := &Claim{out: out, name: o.Name, data: data, owned: map[string]bool{}}
	for _, k := range c.keys() {
		held.owned[k] = true
	}
	prev, err := held.take(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := held.ready(ctx, prev, o); err != nil {
		if rerr := held.Release(context.WithoutCancel(ctx)); rerr != nil {
			o.Log.Warn("could not give back the output's claim", "output", o.Name, "error", rerr.Error())
		}
		return nil, err
	}
	return held, nil
}

// take creates the claim, or takes over a dead holder's, which it returns.
func (h *Claim) take(ctx context.Context, o *ClaimOptions) (*claimRecord, error) {
	err := h.out.Create(ctx, ClaimKey, h.data)
	if !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return nil, fmt.Errorf("output %s: claiming it: %w", o.Name, err)
		}
		return nil, nil
	}
	var holder claimRecord
	if err := readJSON(ctx, h.out, ClaimKey, &holder); err != nil {
		return nil, fmt.Errorf("output %s is claimed by another job, whose claim %s cannot be read (%v); if no job writes there, run `shardprep clean %s`", o.Name, ClaimKey, err, o.Name)
	}
	if !holder.over(ctx, h.out, o) {
		return nil, fmt.Errorf("output %s is in use by %s; wait for that job to end, or if it is dead, run `shardprep clean %s`", o.Name, &holder, o.Name)
	}
	h.takeover = takeoverKey(holder.RunID)
	if err := h.out.Create(ctx, h.takeover, h.data); err != nil {
		h.takeover = ""
		return nil, fmt.Errorf("output %s: another job is taking over the claim of %s, which no longer runs: %w", o.Name, &holder, err)
	}
	o.Log.Warn("taking over the output's claim from a job that no longer runs or has committed", "output", o.Name, "holder", holder.String())
	if err := h.out.Delete(ctx, ClaimKey); err != nil {
		return nil, fmt.Errorf("output %s: removing the stale claim: %w", o.Name, err)
	}
	if err := h.out.Create(ctx, ClaimKey, h.data); err != nil {
		return nil, fmt.Errorf("output %s: claiming it: %w", o.Name, err)
	}
	return &holder, nil
}

// Owns reports whether key is one the claiming job may write: its parts,
// markers, metadata and claim. A sweep of unfinished writes touches only
// those.
func (h *Claim) Owns(key string) bool { return h.owned[key] }

// Release removes the claim once the job has ended (committed, or failed
// and cleaned up). A claim that is no longer this job's is left alone.
func (h *Claim) Release(ctx context.Context) error {
	if h.takeover != "" {
		if err := h.out.Delete(ctx, h.takeover); err != nil {
			return err
		}
	}
	var cur []byte
	rc, err := h.out.NewRangeReader(ctx, ClaimKey, "", 0, -1)
	if err == nil {
		cur, err = io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("output %s: reading the claim: %w", h.name, err)
	case !bytes.Equal(cur, h.data):
		return fmt.Errorf("output %s: the claim is no longer this job's; left it", h.name)
	}
	return h.out.Delete(ctx, ClaimKey)
}

// ready empties the claimed output as ClaimOutput says; prev is the claim
// taken over, if any.
func (h *Claim) ready(ctx context.Context, prev *claimRecord, o *ClaimOptions) error {
	keys, err := h.out.Keys(ctx, "")
	if err != nil {
		return fmt.Errorf("output %s: %w", o.Name, err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool {
		return k == ClaimKey || k == h.takeover || strings.HasPrefix(k, ClusterSecretKey(""))
	})
	if len(keys) == 0 {
		return nil
	}
	if len(keys) == 1 && keys[0] == ReportKey {
		// All that a failed job leaves: its report, which this job's
		// replaces.
		o.Log.Info("replacing a failed job's report", "output", o.Name)
		return h.out.Delete(ctx, ReportKey)
	}
	if !o.Overwrite {
		return fmt.Errorf("output %s already exists (%d objects); choose another --output or pass --overwrite to replace it", o.Name, len(keys))
	}
	folders := earlierFolders(ctx, h.out, prev)
	var ours, foreign []string
	for _, k := range keys {
		if layoutKey(k, folders) {
			ours = append(ours, k)
		} else {
			foreign = append(foreign, k)
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("output %s holds %d objects shardprep did not write (%s); --overwrite replaces only what earlier shardprep jobs wrote: move them away or choose another --output", o.Name, len(foreign), listSome(foreign, 5))
	}
	if i := slices.IndexFunc(ours, o.Reads); i >= 0 {
		return fmt.Errorf("output %s: %s is an input of this job; --overwrite never deletes an input: choose another --output", o.Name, ours[i])
	}
	o.Log.Info("overwriting output", "output", o.Name, "objects", len(ours))
	return deleteInOrder(ctx, h.out, o.Name, ours)
}

// earlierFolders returns the split folders (and _rejected) that the
// output's manifest and a taken-over claim name.
func earlierFolders(ctx context.Context, out Output, prev *claimRecord) map[string]bool {
	folders := map[string]bool{}
	if m, err := readManifest(ctx, out); err == nil && m.Spec != nil {
		for _, f := range append(splitNames(m.Spec), rejectedFolder) {
			folders[f] = true
		}
	}
	if prev != nil {
		for _, f := range prev.Folders {
			folders[f] = true
		}
	}
	return folders
}

// layoutKey reports whether key is shardprep's in an output whose split
// folders are folders: under _shardprep/, or a part or _SUCCESS marker of
// one of those folders.
func layoutKey(key string, folders map[string]bool) bool {
	if strings.HasPrefix(key, metaFolder+"/") {
		return true
	}
	dir, base := path.Split(key)
	return folders[strings.TrimSuffix(dir, "/")] && (base == SuccessName || isPartName(base))
}

// deleteInOrder deletes shardprep's keys of an output so that it stops
// counting as committed first and keeps its record of what is there
// longest: the _SUCCESS markers, the parts, the metadata, the manifest,
// and the claim last.
func deleteInOrder(ctx context.Context, out Output, name string, keys []string) error {
	for _, k := range deleteOrder(keys) {
		if err := out.Delete(ctx, k); err != nil {
			return fmt.Errorf("output %s: removing %s: %w", name, k, err)
		}
	}
	return nil
}

// deleteOrder sorts a copy of keys in the order deleteInOrder deletes them.
func deleteOrder(keys []string) []string {
	rank := func(k string) int {
		switch {
		case path.Base(k) == SuccessName:
			return 0
		case k == ClaimKey:
			return 4
		case k == ManifestKey:
			return 3
		case strings.HasPrefix(k, metaFolder+"/"):
			return 2
		}
		return 1
	}
	keys = slices.Clone(keys)
	slices.SortStableFunc(keys, func(a, b string) int { return rank(a) - rank(b) })
	return keys
}

// listSome lists up to n keys, saying how many more there are.
func listSome(keys []string, n int) string {
	if len(keys) <= n {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(keys[:n], ", "), len(keys)-n)
}

// Leftovers is what an uncommitted shardprep job left in an output; see
// FindLeftovers.
type Leftovers struct {
	// Holder is the claim of the job that left them; nil if there is none.
	Holder *claimRecord
	// Objects are shardprep's objects there, in the order to delete them:
	// markers, parts, metadata (cluster secrets too), the claim last.
	Objects []string
	// Foreign are the objects that are not shardprep's: left alone.
	Foreign []string
	// Keys is every key the job may have written, present or not: its
	// staged and unfinished writes (uploads) are on those.
	Keys  []string
	owned map[string]bool
}

// Owns reports whether key is one of l.Keys.
func (l *Leftovers) Owns(key string) bool { return l.owned[key] }

// FindLeftovers finds what an uncommitted shardprep job left in out: its
// claim, the parts and markers in the split folders that its claim or
// manifest names, _shardprep/ (cluster secrets included). It refuses a
// committed output (--overwrite replaces that) and an output whose claim
// names a process of this host that still runs. Objects that are not
// shardprep's are listed apart, never to be deleted.
func FindLeftovers(ctx context.Context, out Output, opts *ClaimOptions) (*Leftovers, error) {
	o := opts.withDefaults()
	l := &Leftovers{owned: map[string]bool{}}
	var claim claimRecord
	if err := readJSON(ctx, out, ClaimKey, &claim); err == nil {
		l.Holder = &claim
	} else if !errors.Is(err, fs.ErrNotExist) {
		o.Log.Warn("the output's claim cannot be read", "output", o.Name, "error", err.Error())
	}
	m, merr := readManifest(ctx, out)
	if merr == nil && committed(ctx, out, m) {
		return nil, fmt.Errorf("output %s holds the committed output of job %s (run %s); clean removes only what an uncommitted job left: to replace it, run a job with --overwrite", o.Name, m.Job, m.RunID)
	}
	if c := l.Holder; c != nil && c.Host == o.Host && !c.dead(o) {
		return nil, fmt.Errorf("output %s is in use by %s, which still runs; stop it first (a stopped job cleans up after itself)", o.Name, c)
	}
	folders := map[string]bool{}
	var owned []string
	if l.Holder != nil {
		owned = l.Holder.keys()
		for _, f := range l.Holder.Folders {
			folders[f] = true
		}
	}
	if merr == nil && m.Spec != nil {
		owned = append(owned, outputKeys(m.Spec, len(m.Parts))...)
		for _, f := range append(splitNames(m.Spec), rejectedFolder) {
			folders[f] = true
		}
	}
	keys, err := out.Keys(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", o.Name, err)
	}
	for _, k := range keys {
		if layoutKey(k, folders) {
			l.Objects = append(l.Objects, k)
			owned = append(owned, k)
		} else {
			l.Foreign = append(l.Foreign, k)
		}
	}
	l.Objects = deleteOrder(l.Objects)
	for _, k := range owned {
		if !l.owned[k] {
			l.owned[k] = true
			l.Keys = append(l.Keys, k)
		}
	}
	return l, nil
}

// Remove deletes l.Objects in their order.
func (l *Leftovers) Remove(ctx context.Context, out Output, name string) error {
	return deleteInOrder(ctx, out, name, l.Objects)
}
