package pipeline

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shardprep/shardprep/features"
)

// benchJob returns a job of n one-byte splits with a fitted model, so that
// it starts in the transform phase; simulated workers report results
// without reading anything.
func benchJob(b *testing.B, n int) (*Job, *features.Model) {
	b.Helper()
	data, err := os.ReadFile("testdata/abalone.csv")
	if err != nil {
		b.Fatal(err)
	}
	spec, err := features.ParseSpec([]byte(testSpec))
	if err != nil {
		b.Fatal(err)
	}
	store := newMemStore()
	store.objects["abalone.csv"] = data
	obj := Object{URL: "abalone.csv", Name: "abalone.csv", Size: int64(len(data))}
	fit, err := NewJob(spec, []Object{obj}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ft := &splitTask{job: fit, split: fit.Splits[0], src: store, mem: memory.DefaultAllocator, ctr: &counters{}}
	res, err := ft.runFit(context.Background(), false)
	if err != nil {
		b.Fatal(err)
	}
	model, err := res.Stats.Model()
	if err != nil {
		b.Fatal(err)
	}
	job, err := NewJob(spec, []Object{{URL: "big.csv", Name: "big.csv", Size: int64(n)}}, &Settings{SplitSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	if len(job.Splits) != n {
		b.Fatalf("%d splits, want %d", len(job.Splits), n)
	}
	return job, model
}

// simulate runs workers simulated workers over t until the job ends:
// they all join, then each leases one task at a time and reports it done
// at once. It returns the time the joins took, and the number of leases
// granted and the time they took, from the last join to the end.
func simulate(b *testing.B, t transport, workers int) (joins time.Duration, leases int64, leasing time.Duration) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	result := &taskResult{Lines: 10, RowsIn: 10, RowsOut: []int64{8, 2}, BytesRead: 1}
	names := make([]string, workers)
	start := time.Now()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := t.join(context.Background(), &joinRequest{Protocol: ProtocolVersion, Worker: "w" + strconv.Itoa(i), Instance: strconv.Itoa(i)})
			if err != nil {
				b.Error(err)
				return
			}
			names[i] = j.Worker
		}()
	}
	wg.Wait()
	joins = time.Since(start)
	start = time.Now()
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			var n int64
			have := 0
			for {
				resp, err := t.lease(ctx, &leaseRequest{Worker: names[i], Slots: 1, WaitMS: 1000, HaveModel: have})
				if err != nil {
					b.Error(err)
					return
				}
				if resp.State == PhaseCommitted || resp.State == PhaseFailed {
					if resp.State == PhaseFailed {
						b.Error(resp.Error)
					}
					break
				}
				if resp.Model != nil && len(resp.Tasks) > 0 {
					have = resp.Tasks[0].Gen
				}
				for _, task := range resp.Tasks {
					n++
					if _, err := t.report(ctx, &reportRequest{Worker: names[i], Task: task, Result: result}); err != nil {
						b.Error(err)
						return
					}
				}
			}
			mu.Lock()
			leases += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return joins, leases, time.Since(start)
}

// BenchmarkCoordinator measures what one coordinator sustains with 100
// workers and 100,000 splits: lease+report round trips (a whole job per
// iteration) and heartbeats, in process and over HTTP (loopback, signed
// requests, one connection pool standing in for 100 worker processes).
//
// Joins are measured apart, on the coordinator's side only (join/http):
// the job they send grows with the splits.
//
//	go test -run '^$' -bench Coordinator -benchtime 1x ./pipeline/
func BenchmarkCoordinator(b *testing.B) {
	const workers, splits = 100, 100_000
	job, model := benchJob(b, splits)
	secret := []byte("0123456789abcdef")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * workers}}

	runJob := func(b *testing.B, overHTTP bool) {
		b.ReportAllocs()
		var leases int64
		var leasing time.Duration
		for range b.N {
			j := *job
			c := mustCoordinator(b, &j, nil, newMemStore(), &CoordinatorOptions{LeaseTTL: time.Minute, Model: model})
			var t transport = c
			var srv *httptest.Server
			if overHTTP {
				srv = httptest.NewServer(newHandler(c, secret, nil))
				t = newClient(srv.URL, secret, hc)
			}
			done := make(chan error, 1)
			go func() { _, err := c.Run(context.Background()); done <- err }()
			jt, n, lt := simulate(b, t, workers)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			_ = jt // joins over HTTP are measured apart (join/http), without the clients' decoding
			leases += n
			leasing += lt
			if srv != nil {
				srv.Close()
			}
		}
		if leases < int64(b.N*splits) {
			b.Fatalf("%d leases for %d splits", leases, b.N*splits)
		}
		b.ReportMetric(float64(leases)/leasing.Seconds(), "leases/s")
	}
	b.Run("lease+report/inproc", func(b *testing.B) { runJob(b, false) })
	b.Run("lease+report/http", func(b *testing.B) { runJob(b, true) })

	heartbeats := func(b *testing.B, overHTTP bool) {
		j := *job
		c := mustCoordinator(b, &j, nil, newMemStore(), &CoordinatorOptions{LeaseTTL: time.Minute, Model: model})
		var t transport = c
		if overHTTP {
			srv := httptest.NewServer(newHandler(c, secret, nil))
			defer srv.Close()
			t = newClient(srv.URL, secret, hc)
		}
		// Each worker holds 4 tasks and reports progress.
		held := make([][]taskID, workers)
		for i := range workers {
			ctx := context.Background()
			jr, err := c.join(ctx, &joinRequest{Protocol: ProtocolVersion, Worker: "w" + strconv.Itoa(i)})
			if err != nil {
				b.Fatal(err)
			}
			resp, err := c.lease(ctx, &leaseRequest{Worker: jr.Worker, Slots: 4})
			if err != nil || len(resp.Tasks) != 4 {
				b.Fatalf("lease: %v %v", resp, err)
			}
			held[i] = resp.Tasks
		}
		// Each iteration: every worker heartbeats 100 times.
		const rounds = 100
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			var wg sync.WaitGroup
			for i := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := &heartbeatRequest{Worker: "w" + strconv.Itoa(i), Tasks: held[i], Phase: PhaseTransform, Bytes: 1 << 20, Rows: 1000}
					for range rounds {
						if _, err := t.heartbeat(context.Background(), req); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.N*workers*rounds)/time.Since(start).Seconds(), "heartbeats/s")
	}
	b.Run("heartbeat/inproc", func(b *testing.B) { heartbeats(b, false) })
	b.Run("join/http", func(b *testing.B) {
		// The coordinator's side of a join: verify, register, send the job.
		j := *job
		c := mustCoordinator(b, &j, nil, newMemStore(), &CoordinatorOptions{LeaseTTL: time.Minute, Model: model})
		h := newHandler(c, secret, nil)
		b.ReportAllocs()
		var sent int64
		for i := range b.N {
			name := "w" + strconv.Itoa(i)
			body := []byte(`{"protocol":` + strconv.Itoa(ProtocolVersion) + `,"worker":"` + name + `"}`)
			req := httptest.NewRequest(http.MethodPost, "/v1/join", bytes.NewReader(body))
			req.Header.Set(authHeader, signedAuth(secret, "/v1/join", "", name, time.Now().Unix(), body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("join: %d %s", rec.Code, rec.Body.String())
			}
			sent += int64(rec.Body.Len())
		}
		b.SetBytes(sent / int64(b.N))
	})
	b.Run("heartbeat/http", func(b *testing.B) { heartbeats(b, true) })
}
