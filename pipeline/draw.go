package pipeline

// hashDrawer draws the split value of the rows of one object for one seed.
// Its draws are those of hashDraw; it hashes the object's name once.
type hashDrawer struct {
	key uint64
}

// newHashDrawer returns the drawer for the rows of the object called name
// under seed.
func newHashDrawer(seed int64, name string) hashDrawer {
	return hashDrawer{key: splitmix64(splitmix64(uint64(seed)) ^ fnv1a64(name))}
}

// Draw returns hashDraw(seed, name, offset) for the drawer's seed and name.
func (h hashDrawer) Draw(offset int64) float64 {
	return float64(splitmix64(h.key^uint64(offset))>>11) * 0x1p-53
}

// hashDraw maps (seed, object name, line offset) to a double in [0,1),
// uniformly distributed over the 2^53 multiples of 2^-53. It is a fixed
// function, stable across releases, so the same input and seed always give
// the same split whatever the number of workers or the split size:
//
//	k := FNV-1a-64(name)                   // offset basis 0xcbf29ce484222325, prime 0x100000001b3
//	x := mix(mix(uint64(seed)) ^ k)
//	x  = mix(x ^ uint64(offset))
//	draw = float64(x >> 11) * 2^-53
//
// where mix is the splitmix64 step: z += 0x9e3779b97f4a7c15;
// z = (z ^ z>>30) * 0xbf58476d1ce4e5b9; z = (z ^ z>>27) * 0x94d049bb133111eb;
// z ^ z>>31.
func hashDraw(seed int64, name string, offset int64) float64 {
	return newHashDrawer(seed, name).Draw(offset)
}

func fnv1a64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

func splitmix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
