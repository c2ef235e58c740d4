package pipeline

import (
	"fmt"
	"math"
	"slices"
)

// timelineView is one lane per worker with its attempts along the job's
// time, or their busy time per bucket when there are too many.
type timelineView struct {
	Lanes   []lane
	W, H    float64
	TotalMS int64
	Ticks   []tick
	Note    string
}

type lane struct {
	Worker string
	Y      float64
	Bars   []bar
}

type tick struct {
	X     float64
	Label string
}

// timeline lays out the attempts of m.
func timeline(m *Manifest) timelineView {
	total := max(m.Timings.TotalMS, 1)
	for _, a := range m.Attempts {
		total = max(total, a.EndMS)
	}
	scale := (reportWidth - chartLeft) / float64(total)
	workers := map[string]int{}
	var names []string
	for _, a := range m.Attempts {
		if _, ok := workers[a.Worker]; !ok {
			workers[a.Worker] = 0
			names = append(names, a.Worker)
		}
	}
	slices.Sort(names)
	v := timelineView{W: reportWidth, H: float64(len(names))*laneHeight + 20, TotalMS: total}
	for i, n := range names {
		workers[n] = i
		v.Lanes = append(v.Lanes, lane{Worker: n, Y: float64(i) * laneHeight})
	}
	retried := map[[2]int]bool{} // phase (0 fit, 1 transform), split
	for _, a := range m.Attempts {
		if a.Attempt > 1 {
			retried[[2]int{phaseIndex(a.Phase), a.Split}] = true
		}
	}
	many := len(m.Attempts) > maxBars
	if many {
		v.Note = fmt.Sprintf("%d attempts: busy time per worker in %d steps (darker: more splits at once); attempts that did not finish, and retries, drawn one by one", len(m.Attempts), timeBuckets)
		for i, b := range busy(m.Attempts, workers, len(names), total) {
			v.Lanes[i].Bars = b
		}
	}
	for _, a := range m.Attempts {
		special := a.Outcome != attemptDone || retried[[2]int{phaseIndex(a.Phase), a.Split}]
		if many && !special {
			continue
		}
		end := a.EndMS
		if end < 0 {
			end = total
		}
		class := "ph-" + string(a.Phase)
		if a.Outcome != attemptDone {
			class += " bad"
		} else if special {
			class += " retry"
		}
		l := &v.Lanes[workers[a.Worker]]
		l.Bars = append(l.Bars, bar{X: chartLeft + float64(a.StartMS)*scale, Y: l.Y + 3, W: max(float64(end-a.StartMS)*scale, 1), H: laneHeight - 6,
			Class: class, Tip: fmt.Sprintf("%s split %d, attempt %d on %s: %d–%d ms, %s", a.Phase, a.Split, a.Attempt, a.Worker, a.StartMS, end, a.Outcome)})
	}
	for i := 0; i <= 4; i++ {
		ms := total * int64(i) / 4
		label := fmt.Sprintf("%.1f s", float64(ms)/1000)
		if total < 10000 {
			label = fmt.Sprintf("%d ms", ms)
		}
		v.Ticks = append(v.Ticks, tick{X: chartLeft + float64(ms)*scale, Label: label})
	}
	return v
}

func phaseIndex(p Phase) int {
	if p == PhaseFit {
		return 0
	}
	return 1
}

// busy sums each worker's attempts' time per phase into timeBuckets and
// draws each bucket with an opacity class by how busy it was.
func busy(attempts []taskAttempt, workers map[string]int, n int, total int64) [][]bar {
	step := float64(total) / timeBuckets
	load := make([][2][timeBuckets]float64, n)
	for _, a := range attempts {
		end := a.EndMS
		if end < 0 {
			end = total
		}
		l := &load[workers[a.Worker]][phaseIndex(a.Phase)]
		for b := int(float64(a.StartMS) / step); b < timeBuckets && float64(b)*step < float64(end); b++ {
			lo, hi := max(float64(a.StartMS), float64(b)*step), min(float64(end), float64(b+1)*step)
			l[b] += max(hi-lo, 0) / step
		}
	}
	top := 1.0
	for _, w := range load {
		for _, p := range w {
			top = max(top, slices.Max(p[:]))
		}
	}
	out := make([][]bar, n)
	w := (reportWidth - chartLeft) / timeBuckets
	for i, wl := range load {
		for p, pl := range wl {
			for b, x := range pl {
				if x == 0 {
					continue
				}
				level := min(int(x/top*4)+1, 4)
				class := fmt.Sprintf("ph-%s o%d", []string{"fit", "transform"}[p], level)
				x0 := chartLeft + float64(b)*w
				if n := len(out[i]); n > 0 && out[i][n-1].Class == class && math.Abs(out[i][n-1].X+out[i][n-1].W-x0) < 1e-6 {
					out[i][n-1].W += w // a run of buckets as busy: one bar
					continue
				}
				y := float64(i)*laneHeight + 3 + float64(p)*(laneHeight-6)/2
				out[i] = append(out[i], bar{X: x0, Y: y, W: w, H: (laneHeight - 6) / 2, Class: class,
					Tip: fmt.Sprintf("%s: busy %d/4", []string{"fit", "transform"}[p], level)})
			}
		}
	}
	return out
}

// lineChart is one series over the job's time.
type lineChart struct {
	Title  string
	Unit   string
	Points string // SVG polyline points
	Area   string // SVG polygon points
	Peak   string
	W, H   float64
}

// throughput spreads each finished attempt's bytes and rows evenly over
// its time and sums them per time bucket, for the whole job.
func throughput(m *Manifest) []lineChart {
	total := max(m.Timings.TotalMS, 1)
	step := float64(total) / timeBuckets
	var bytes, rows [timeBuckets]float64
	for _, a := range m.Attempts {
		if a.Outcome != attemptDone || a.Split < 0 || a.Split >= len(m.Parts) {
			continue
		}
		p := m.Parts[a.Split]
		dur := max(float64(a.EndMS-a.StartMS), 1)
		for b := int(float64(a.StartMS) / step); b < timeBuckets && float64(b)*step <= float64(a.EndMS); b++ {
			lo, hi := max(float64(a.StartMS), float64(b)*step), min(float64(a.EndMS), float64(b+1)*step)
			f := max(hi-lo, 0) / dur
			if a.EndMS == a.StartMS {
				f = 1
			}
			bytes[b] += f * float64(p.Length)
			rows[b] += f * float64(p.RowsIn+p.Rejected)
		}
	}
	perSec := 1000 / step
	return []lineChart{series("input read", "MB/s", bytes[:], perSec/1e6), series("rows read", "rows/s", rows[:], perSec)}
}

func series(title, unit string, vals []float64, scale float64) lineChart {
	c := lineChart{Title: title, Unit: unit, W: reportWidth - chartLeft, H: chartHeight}
	top := slices.Max(vals) * scale
	c.Peak = fmt.Sprintf("peak %.4g %s", top, unit)
	top = max(top, 1e-9)
	dx := c.W / float64(len(vals))
	area := fmt.Sprintf("0,%.1f ", c.H)
	for i, v := range vals {
		x, y := (float64(i)+0.5)*dx, c.H-v*scale/top*c.H
		c.Points += fmt.Sprintf("%.1f,%.1f ", x, y)
		area += fmt.Sprintf("%.1f,%.1f ", x, y)
	}
	c.Area = area + fmt.Sprintf("%.1f,%.1f", c.W, c.H)
	return c
}
