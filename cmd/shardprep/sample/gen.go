package sample

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

type sampleRow struct {
	sex   string
	nums  [7]float64
	rings int
}

// Generate writes rows rows like CSV's to w: rows drawn at random from
// CSV, each measure jittered by about 2% and the ring count by one either
// way. The same rows and seed give the same bytes. It stops with ctx's
// error when ctx ends.
func Generate(ctx context.Context, w io.Writer, rows int64, seed uint64) error {
	base, err := parseSample(CSV)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 0x5ba7d9e3c1))
	buf := make([]byte, 0, 256)
	for i := int64(0); i < rows; i++ {
		if i%65536 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		r := &base[rng.IntN(len(base))]
		buf = append(buf[:0], r.sex...)
		for _, v := range r.nums {
			v *= 1 + 0.02*rng.NormFloat64()
			if v < 0 {
				v = 0
			}
			buf = append(buf, ',')
			buf = strconv.AppendFloat(buf, v, 'f', 4, 64)
		}
		rings := r.rings + rng.IntN(3) - 1
		if rings < 1 {
			rings = 1
		}
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(rings), 10)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func parseSample(data []byte) ([]sampleRow, error) {
	var rows []sampleRow
	for n, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		f := bytes.Split(bytes.TrimSpace(line), []byte(","))
		if len(f) != 9 {
			return nil, fmt.Errorf("bundled sample line %d: %d fields", n+1, len(f))
		}
		r := sampleRow{sex: string(f[0])}
		for i := range 7 {
			v, err := strconv.ParseFloat(string(f[i+1]), 64)
			if err != nil {
				return nil, fmt.Errorf("bundled sample line %d: %w", n+1, err)
			}
			r.nums[i] = v
		}
		rings, err := strconv.Atoi(string(f[8]))
		if err != nil {
			return nil, fmt.Errorf("bundled sample line %d: %w", n+1, err)
		}
		r.rings = rings
		rows = append(rows, r)
	}
	return rows, nil
}
