package hugepages

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// modeFile is where Linux says which THP mode it is in.
var modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// Advise maps n bytes of Go heap and asks the kernel to back them with
// huge pages, then gives them back to the runtime for the allocations
// that follow. It does so only where the kernel's THP mode is "madvise":
// in "always" the heap has huge pages already, in "never" none can be
// had. GODEBUG=disablethp=1, the runtime's own switch against huge
// pages, turns it off too. It reports whether it asked. It costs one
// garbage collection while the heap is small; call it before the work
// begins.
func Advise(n int) bool {
	_, ok := advise(n)
	return ok
}

// advise is Advise, returning where the advised memory starts.
func advise(n int) (uintptr, bool) {
	if n <= 0 || !madviseMode() || disabled(os.Getenv("GODEBUG")) {
		return 0, false
	}
	// A fresh large object is address space the runtime has just mapped
	// and not touched, so the advice moves no data. Allocating it must not
	// start a collection of its own: the one below is enough.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	b := make([]byte, n)
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	hi := lo + uintptr(n)
	// The heap mapped before it, the rest of the runtime's current chunk,
	// is where the first small allocations after it will go: advise it
	// too.
	if start, ok := mappingStart(lo); ok {
		lo = start
	}
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_HUGEPAGE)
	runtime.KeepAlive(b)
	b = nil
	// Collect the object and return its untouched pages to the system:
	// the runtime counts them as released, and its page allocator, which
	// hands out the lowest free pages first, gives them to the job.
	debug.FreeOSMemory()
	return lo, errno == 0
}

// mappingStart returns where the memory mapping holding addr starts,
// from /proc/self/maps.
func mappingStart(addr uintptr) (uintptr, bool) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if lo, hi, ok := mappingRange(sc.Text()); ok && lo <= addr && addr < hi {
			return lo, true
		}
	}
	return 0, false
}

// mappingRange parses the address range that starts a line of
// /proc/self/maps or smaps ("c000000000-c000400000 rw-p ...").
func mappingRange(line string) (lo, hi uintptr, ok bool) {
	r, _, _ := strings.Cut(line, " ")
	a, b, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 16, 64)
	y, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(x), uintptr(y), true
}

// madviseMode reports whether the kernel gives huge pages only to memory
// advised for them.
func madviseMode() bool {
	b, err := os.ReadFile(modeFile)
	return err == nil && bytes.Contains(b, []byte("[madvise]"))
}

// disabled reports whether a GODEBUG value turns huge pages off.
func disabled(godebug string) bool {
	on := false
	for _, kv := range strings.Split(godebug, ",") {
		// The last setting wins, as in the runtime.
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "disablethp" {
			on = v == "1"
		}
	}
	return on
}
