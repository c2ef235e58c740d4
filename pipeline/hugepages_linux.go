package pipeline

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel to back the whole 2 MiB pages within s's
// memory, not yet written, with transparent huge pages: the Spark mode's
// large buffers are then faulted in 2 MiB at a time rather than 4 KiB, and
// their random reads miss the TLB less. It is a hint: where the kernel
// does not take it (huge pages off, or not on this system), nothing
// changes.
func adviseHuge[T any](s []T) {
	const huge = 2 << 20
	var t T
	n := uintptr(cap(s)) * unsafe.Sizeof(t)
	if n < 2*huge {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	lo, hi := (start+huge-1)&^(huge-1), (start+n)&^(huge-1)
	if hi > lo {
		madviseHuge(lo, hi)
	}
	runtime.KeepAlive(s)
}

// madviseHuge marks the memory from lo to hi for transparent huge pages.
func madviseHuge(lo, hi uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_HUGEPAGE); errno != 0 {
		return errno
	}
	return nil
}

// thpModeFile is where Linux says which THP mode it is in.
var thpModeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// AdviseHugeHeap asks the kernel to back n bytes of Go heap, the part a
// job's buffers and batches will live in, with transparent huge pages.
// Where the kernel's THP mode is "madvise" (the default of many
// distributions), memory gets huge pages only where a program asks, and
// Go's runtime does not ask: a job then touches its heap 4 KiB at a time,
// a two-worker job's 40-odd MB some 9,000 page faults, and on a virtual
// machine a fault can cost 20 µs. In "always" mode the heap has huge
// pages already, in "never" none can be had, and GODEBUG=disablethp=1
// (the runtime's own switch) turns them off: there AdviseHugeHeap does
// nothing, and so it does where the address space is limited (ulimit
// -v). It reports whether it asked.
//
// The advice holds for memory mapped when it is given: the runtime maps
// its heap piece by piece as it grows, so AdviseHugeHeap first has it
// map n bytes, by allocating them, and then gives them back. It costs one
// garbage collection while the heap is small; call it before the work
// begins.
func AdviseHugeHeap(n int) bool {
	_, ok := adviseHeap(n)
	return ok
}

// adviseHeap is AdviseHugeHeap, returning where the advised memory
// starts.
func adviseHeap(n int) (uintptr, bool) {
	if n <= 0 || !thpMadviseMode() || thpDisabled(os.Getenv("GODEBUG")) || addressSpaceLimited() {
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
	err := madviseHuge(lo, hi)
	runtime.KeepAlive(b)
	// Collect the object and return its untouched pages to the system:
	// the runtime counts them as released, and its page allocator, which
	// hands out the lowest free pages first, gives them to the job.
	debug.FreeOSMemory()
	return lo, err == nil
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

// addressSpaceLimited reports whether the process's address space is
// limited (ulimit -v): there the advice's allocation, address space the
// job may not have to spare, is not made.
func addressSpaceLimited() bool {
	var l syscall.Rlimit
	return syscall.Getrlimit(syscall.RLIMIT_AS, &l) == nil && l.Cur != math.MaxUint64 // RLIM_INFINITY
}

// thpMadviseMode reports whether the kernel gives huge pages only to memory
// advised for them.
func thpMadviseMode() bool {
	b, err := os.ReadFile(thpModeFile)
	return err == nil && bytes.Contains(b, []byte("[madvise]"))
}

// thpDisabled reports whether a GODEBUG value turns huge pages off.
func thpDisabled(godebug string) bool {
	on := false
	for _, kv := range strings.Split(godebug, ",") {
		// The last setting wins, as in the runtime.
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "disablethp" {
			on = v == "1"
		}
	}
	return on
}
