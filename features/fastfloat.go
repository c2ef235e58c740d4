package features

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// appendShortDecimal appends the positional Python repr of v, "[-]i.f", and
// reports true, when v is not an integer (AppendPyFloat prints those
// itself), 1e-4 <= |v| < 1e11, and v's shortest round-trip digits have at
// most K fraction digits, K = 8 below 1e7 and 4 above. Otherwise it returns
// dst unchanged and false, and the caller formats v with strconv. What it
// appends is byte for byte what strconv's shortest digits give.
//
// Why. Let a = |v|, u = ulp(a) (a is normal), and call a decimal m/10^k
// (integer m >= 0) a k-candidate when it reads back to a, i.e. lies in a's
// rounding interval, which is at most u wide and reaches at most u/2 from a.
// For the K used, t = fl(a*10^K) < 1e15 < 2^50 and u*10^K <= 1/4 (u <= 2^-29
// below 1e7, u <= 2^-16 below 1e11).
//
//   - The one K-candidate, if any, is found: a K-candidate m satisfies
//     |m - a*10^K| <= u*10^K/2 <= 1/8, and t is within ulp(t)/2 <= 1/16 of
//     a*10^K, so |m - t| <= 3/16 and m = floor(fl(t+1/2)) (fl(t+1/2) is
//     within 1/16 of t+1/2, which is at least 5/16 from an integer). It is
//     the only one: the interval is at most u < 10^-K wide.
//   - Testing it is exact: m < 2^53 and 10^K are float64s, so float64(m)/10^K
//     is the correctly rounded (ties to even) value of m/10^K, which is what
//     strconv.ParseFloat returns. If it fails there is no k-candidate for
//     any k <= K, since a k-candidate c gives the K-candidate c*10^(K-k).
//   - Dropping the trailing zeros of m's K fraction digits gives the least
//     k with a candidate: a k-candidate c with k < K makes c*10^(K-k) the
//     K-candidate m, which then ends in K-k zeros. And k >= 1: a is not an
//     integer, and an integer below 2^53 reads back only to itself.
//   - That candidate is unique among the k-candidates (the interval is
//     narrower than 10^-k) and it has the fewest significant digits, which
//     is what strconv (like Python's repr) chooses first. A candidate with k
//     fraction digits and leading digit at 10^E has k+E+1 digits, and all
//     candidates share E unless the interval holds a power of ten 10^E'.
//     That power is a candidate with one digit, not an integer (as above),
//     so E' < 0; decimals with at most -E' fraction digits are multiples of
//     10^E', and all but 10^E' itself lie far outside an interval of
//     relative width 2^-52: the least k finds the power of ten. Without
//     such a power, fewer digits means smaller k.
//   - Being unique among the shortest, it is also the closest to a, so
//     strconv's tie-break has nothing to choose.
//
// The positional layout holds: Python prints 1e-4 <= |v| < 1e16 positionally,
// and a >= float64(1e-4) exactly when its shortest digits are >= 1e-4,
// since rounding is monotone and float64(1e-4) prints as 0.0001.
func appendShortDecimal(dst []byte, v float64) ([]byte, bool) {
	a := math.Abs(v)
	var scaled uint64 // a's K-candidate times 10^(8-K): a*10^8 as an integer
	switch {
	case a >= 1e-4 && a < 1e7:
		m := int64(a*1e8 + 0.5)
		if float64(m)/1e8 != a {
			return dst, false
		}
		scaled = uint64(m)
	case a >= 1e7 && a < 1e11:
		m := int64(a*1e4 + 0.5)
		if float64(m)/1e4 != a {
			return dst, false
		}
		scaled = uint64(m) * 1e4
	default:
		return dst, false
	}
	ip, fd := scaled/1e8, eightDigits(scaled%1e8)
	if fd == 0 {
		return dst, false // an integer; not reached from AppendPyFloat
	}
	k := 8 - bits.LeadingZeros64(fd)/8 // fraction digits without trailing zeros
	n := 1                             // integer digits
	for x := ip; x >= 10; x /= 10 {
		n++
	}
	size := n + 1 + k
	if v < 0 {
		size++
	}
	// Room for all 8 fraction digits; those past size are not kept.
	dst = slices.Grow(dst, size+8)
	b := dst[len(dst) : len(dst)+size+8]
	i := n
	if v < 0 {
		b[0] = '-'
		i++
	}
	binary.LittleEndian.PutUint64(b[i+1:], fd+0x3030303030303030)
	b[i] = '.'
	for {
		i--
		b[i] = byte('0' + ip%10)
		ip /= 10
		if ip == 0 {
			break
		}
	}
	return dst[:len(dst)+size], true
}

// eightDigits returns the eight decimal digits of x < 10^8, zero-padded,
// one per byte as values 0 to 9, the most significant in the lowest byte:
// adding 0x3030303030303030 and storing little-endian writes the text.
// Each step splits every lane in two by multiplying by a reciprocal: 4+4
// digits in 32-bit lanes, 2+2 in 16-bit lanes, 1+1 in bytes.
func eightDigits(x uint64) uint64 {
	v := x/10000 | (x%10000)<<32
	q := (v * 10486 >> 20) & 0x0000007f_0000007f // v/100 per lane, v < 10^4
	v = q | (v-q*100)<<16
	q = (v * 103 >> 10) & 0x000f_000f_000f_000f // v/10 per lane, v < 100
	return q | (v-q*10)<<8
}
