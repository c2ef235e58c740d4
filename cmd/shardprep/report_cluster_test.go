package main

import (
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shardprep/shardprep/features"
	"github.com/shardprep/shardprep/pipeline"
)

// exactRef is a column's reference statistics, in exact rationals from
// the numbers' text.
type exactRef struct {
	n        int64
	min, max float64
	sum, sq  *big.Rat
}

func newExactRef() *exactRef {
	return &exactRef{min: math.Inf(1), max: math.Inf(-1), sum: new(big.Rat), sq: new(big.Rat)}
}

func (r *exactRef) add(t *testing.T, text string) {
	v, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil {
		t.Fatal(err)
	}
	r.n++
	r.min, r.max = min(r.min, v), max(r.max, v)
	x := new(big.Rat).SetFloat64(v)
	r.sum.Add(r.sum, x)
	r.sq.Add(r.sq, x.Mul(x, x))
}

func (r *exactRef) check(t *testing.T, c features.ColumnSummary) {
	t.Helper()
	n := big.NewRat(r.n, 1)
	mean, _ := new(big.Rat).Quo(r.sum, n).Float64()
	v := new(big.Rat).Sub(r.sq, new(big.Rat).Quo(new(big.Rat).Mul(r.sum, r.sum), n))
	vf, _ := v.Quo(v, big.NewRat(r.n-1, 1)).Float64()
	sum, _, err := big.ParseFloat(c.Sum, 0, 1<<14, big.ToZero)
	if err != nil {
		t.Fatal(err)
	}
	exact := new(big.Float).SetPrec(1 << 14).SetRat(r.sum)
	if c.Count != r.n || *c.Min != r.min || *c.Max != r.max || *c.Mean != mean || *c.Std != math.Sqrt(vf) || sum.Cmp(exact) != 0 {
		t.Errorf("%s: count %d min %v max %v mean %v std %v sum %s; want %d %v %v %v %v %s", c.Column,
			c.Count, *c.Min, *c.Max, *c.Mean, *c.Std, c.Sum, r.n, r.min, r.max, mean, math.Sqrt(vf), exact.Text('p', 0))
	}
	var hist int64
	for _, k := range c.Histogram.Count {
		hist += k
	}
	if hist != r.n {
		t.Errorf("%s: histogram holds %d values, want %d", c.Column, hist, r.n)
	}
}

// Data for the cluster report: 1,000,000 generated rows, made once.
var (
	millionOnce sync.Once
	millionPath string
)

func millionRows(t *testing.T) string {
	t.Helper()
	millionOnce.Do(func() {
		p := filepath.Join(binDir, "data", "abalone-1m.csv")
		if out, err := exec.Command(shardprepBin(t), "gen", "--rows", "1000000", "--seed", "8", "--out", p).CombinedOutput(); err != nil {
			t.Fatalf("gen: %v\n%s", err, out)
		}
		millionPath = p
	})
	if millionPath == "" {
		t.Fatal("no test data")
	}
	return millionPath
}

// scraper scrapes a /metrics URL every 50ms, parsing each scrape with
// the Prometheus text parser, and keeps the largest value seen of each
// sample.
type scraper struct {
	mu      sync.Mutex
	peak    map[string]float64 // metric{labels} -> largest value
	scrapes int
	errs    []string
	stop    chan struct{}
	done    chan struct{}
}

func scrape(t *testing.T, url string) *scraper {
	s := &scraper{peak: map[string]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := http.Get(url)
			if err != nil {
				continue // not listening yet, or gone
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s.take(resp.Header.Get("Content-Type"), string(body))
		}
	}()
	t.Cleanup(s.end)
	return s
}

func (s *scraper) take(ctype, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		s.errs = append(s.errs, fmt.Sprintf("%v (content type %q):\n%s", err, ctype, body))
		return
	}
	s.scrapes++
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name + labelsOf(m)
			var v float64
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			}
			s.peak[key] = max(s.peak[key], v)
		}
	}
}

func labelsOf(m *dto.Metric) string {
	var l []string
	for _, p := range m.GetLabel() {
		l = append(l, p.GetName()+"="+p.GetValue())
	}
	if len(l) == 0 {
		return ""
	}
	return "{" + strings.Join(l, ",") + "}"
}

func (s *scraper) end() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// check ends the scraping and asserts what it saw.
func (s *scraper) check(t *testing.T, want map[string]float64) {
	t.Helper()
	s.end()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		t.Errorf("a scrape did not parse: %s", s.errs[0])
	}
	if s.scrapes == 0 {
		t.Fatal("no scrape succeeded during the job")
	}
	for k, v := range want {
		if got, ok := s.peak[k]; !ok || got < v {
			t.Errorf("metric %s peaked at %v (present %v), want at least %v", k, got, ok, v)
		}
	}
}

var metricsRE = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

// TestMetricsDuringRun scrapes `run --metrics` while the job runs.
func TestMetricsDuringRun(t *testing.T) {
	in := millionRows(t)
	out := filepath.Join(t.TempDir(), "out")
	p := start(t, "run", baseEnv(), shardprepBin(t), "run", "--input", in, "--output", out, "--seed", "4",
		"--workers", "1", "--split-size", "4MiB", "--metrics", "127.0.0.1:0")
	var url string
	if !p.await(30*time.Second, func() bool {
		m := metricsRE.FindStringSubmatch(p.out())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("run did not print its metrics address:\n%s%s", p.out(), p.errText())
	}
	s := scrape(t, url)
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("run exit %d\n%s", code, p.errText())
	}
	m := readManifest(t, out)
	splits := float64(len(m.Parts))
	// A fit on a sample of two splits may be over between two scrapes.
	fitPhase := float64(boolInt(m.FitSample == nil))
	s.check(t, map[string]float64{
		`shardprep_phase{phase=fit}`: fitPhase, `shardprep_phase{phase=transform}`: 1,
		`shardprep_splits{phase=transform}`: splits, `shardprep_splits_done{phase=fit}`: float64(fitTasks(m)),
		`shardprep_splits_done{phase=transform}`: 1, `shardprep_rows_read{phase=fit}`: 1,
		`shardprep_workers_alive`: 1, `shardprep_input_bytes`: 1,
	})
}

// TestReportClusterKilledWorker: a 1M-row job on two worker processes,
// one of them killed holding a transform task; the coordinator's
// /metrics is scraped throughout, and the report shows the reassignment.
func TestReportClusterKilledWorker(t *testing.T) {
	in := millionRows(t)
	out := filepath.Join(t.TempDir(), "out")
	coord, addr := startCoordinator(t, clusterEnv(), nil, "--listen", "127.0.0.1:0", "--input", in, "--output", out,
		"--seed", "12", "--split-size", "4MiB", "--workers", "0", "--lease", "1s")
	s := scrape(t, "http://"+addr+"/metrics")
	stopped := make(chan struct{})
	var once sync.Once
	var victim *proc
	var vmu sync.Mutex
	coord.onLog(func(r logRecord) {
		if r.Msg == "task leased" && r.Worker == "w2" && strings.HasPrefix(r.Task, "transform") {
			once.Do(func() {
				vmu.Lock()
				victim.cmd.Process.Signal(syscall.SIGSTOP)
				vmu.Unlock()
				close(stopped)
			})
		}
	})
	w1 := startWorker(t, clusterEnv(), nil, "http://"+addr, "w1")
	vmu.Lock()
	victim = startWorker(t, clusterEnv(), nil, "http://"+addr, "w2", "--workers", "2")
	vmu.Unlock()
	select {
	case <-stopped:
	case <-time.After(2 * time.Minute):
		t.Fatal("w2 was never leased a transform task")
	}
	coord.await(30*time.Second, func() bool { return strings.Contains(coord.errText(), "lease expired") })
	victim.signal(t, syscall.SIGKILL)
	if code := coord.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, lastLines(coord.errText(), 5))
	}
	if code := w1.wait(t, 30*time.Second); code != 0 {
		t.Errorf("w1 exit %d", code)
	}
	m := readManifest(t, out)
	if len(m.Reassigned) == 0 {
		t.Fatal("no split was reassigned: w2 finished its task before it stopped")
	}
	s.check(t, map[string]float64{`shardprep_leases_expired_total`: 1, `shardprep_task_retries_total`: 1,
		`shardprep_workers_alive`: 2, `shardprep_splits_done{phase=transform}`: 1})
	expired := 0
	for _, a := range m.Attempts {
		if a.Worker == "w2" && a.Outcome == "expired" {
			expired++
		}
	}
	if expired == 0 {
		t.Errorf("no expired attempt of w2 among %d attempts", len(m.Attempts))
	}
	path := filepath.Join(out, "_shardprep", "report.html")
	text, raw := reportText(t, path)
	checkReportNumbers(t, text, m)
	r := m.Reassigned[0]
	for _, want := range []string{fmt.Sprintf("%s split %d from w2 (lease expired)", r.Phase, r.Split), "on w2", " ms, expired", "w1"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report does not show %q", want)
		}
	}
	if !strings.Contains(string(raw), `class="ph-transform bad"`) || !strings.Contains(string(raw), `ph-transform retry`) {
		t.Error("the timeline marks no lost attempt and no retried split")
	}
	screenshot(t, path, filepath.Join(t.TempDir(), "report.png"))
}

var _ = pipeline.ReportKey
