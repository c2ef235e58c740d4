package pipeline

import (
	"runtime"
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
		syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(s)
}
