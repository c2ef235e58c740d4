// Package hugepages asks Linux to back the start of the Go heap with
// transparent huge pages.
//
// Where the kernel's THP mode is "madvise" (the default of many
// distributions), memory gets huge pages only where a program asks, and
// Go's runtime does not ask. A job then touches its heap 4 KiB at a time:
// a two-worker job's 40-odd MB are some 9,000 page faults, and on
// virtual machines a fault can cost 20 µs. Advise asks once, for the part
// of the heap a job lives in, so that those faults become a few dozen.
package hugepages

// HeapSize is how much heap a data command asks huge pages for. Address
// space costs nothing until it is touched, so it is sized for the largest
// heap a job with one worker per core has on a small host: the Spark split
// mode's, about 120 MiB at 2M rows, with room to spare. Memory a job
// touches in it is resident 2 MiB at a time.
const HeapSize = 256 << 20
