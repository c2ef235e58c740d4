package pipeline

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// fakeMode points thpModeFile at a file holding mode for the test, and
// returns its path.
func fakeMode(t *testing.T, mode string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "enabled")
	if err := os.WriteFile(path, []byte(mode+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := thpModeFile
	thpModeFile = path
	t.Cleanup(func() { thpModeFile = old })
	return path
}

// vmFlags returns the VmFlags of the mapping holding addr, from
// /proc/self/smaps.
func vmFlags(addr uintptr) ([]string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := mappingRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(line, "VmFlags:")), nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no mapping in /proc/self/smaps holds %#x", addr)
}

// childEnv makes the test binary run freshProcess instead of its tests.
const childEnv = "PIPELINE_TEST_HUGE_HEAP_PROCESS"

// limitedEnv makes the test binary run limitedProcess instead of its tests.
const limitedEnv = "PIPELINE_TEST_HUGE_HEAP_LIMITED"

func TestMain(m *testing.M) {
	if os.Getenv(limitedEnv) != "" {
		if err := limitedProcess(os.Getenv(limitedEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(childEnv) != "" {
		if err := freshProcess(os.Getenv(childEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// freshProcess calls adviseHeap first thing in a process, as main does, and
// checks that the memory it advised is where the next allocations go.
func freshProcess(mode string) error {
	thpModeFile = mode
	// No collection but advise's own: the advised memory must come back
	// to the runtime because adviseHeap frees it.
	debug.SetGCPercent(-1)
	const n = 16 << 20
	start, ok := adviseHeap(n)
	if !ok {
		return errors.New("adviseHeap did not advise in madvise mode")
	}
	flags, err := vmFlags(start)
	if err != nil {
		return err
	}
	if !slices.Contains(flags, "hg") {
		return fmt.Errorf("heap at %#x: VmFlags %v, want hg (MADV_HUGEPAGE)", start, flags)
	}
	// A job's buffers and batches must land in the advised memory.
	var errs []error
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10} {
		b := make([]byte, size)
		at := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		flags, err := vmFlags(at)
		if err != nil {
			return err
		}
		if at < start || !slices.Contains(flags, "hg") {
			errs = append(errs, fmt.Errorf("a %d-byte buffer allocated after adviseHeap is at %#x, outside the memory advised from %#x (VmFlags %v)", size, at, start, flags))
		}
	}
	return errors.Join(errs...)
}

func TestAdviseHugeHeapMarksTheHeapTheNextAllocationsUse(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+fakeMode(t, "always [madvise] never"), "GODEBUG=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// limitedProcess limits its address space, as ulimit -v does, and checks
// that adviseHeap then leaves the heap alone.
func limitedProcess(mode string) error {
	thpModeFile = mode
	l := syscall.Rlimit{Cur: 1 << 40, Max: 1 << 40}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &l); err != nil {
		return err
	}
	if _, ok := adviseHeap(16 << 20); ok {
		return errors.New("adviseHeap advised in a process whose address space is limited")
	}
	return nil
}

func TestAdviseHugeHeapNotUnderAddressSpaceLimit(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), limitedEnv+"="+fakeMode(t, "always [madvise] never"), "GODEBUG=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestAdviseHugeHeapOnlyInMadviseMode(t *testing.T) {
	t.Setenv("GODEBUG", "")
	for _, mode := range []string{"[always] madvise never", "always madvise [never]", ""} {
		fakeMode(t, mode)
		if AdviseHugeHeap(1 << 20) {
			t.Errorf("mode %q: advised, want nothing done", mode)
		}
	}
	thpModeFile = filepath.Join(t.TempDir(), "missing")
	if AdviseHugeHeap(1 << 20) {
		t.Error("no THP mode file: advised, want nothing done")
	}
}

func TestAdviseHugeHeapHonoursDisablethp(t *testing.T) {
	fakeMode(t, "always [madvise] never")
	t.Setenv("GODEBUG", "madvdontneed=1,disablethp=1")
	if AdviseHugeHeap(1 << 20) {
		t.Error("GODEBUG=disablethp=1: advised, want nothing done")
	}
}

func TestTHPDisabled(t *testing.T) {
	for in, want := range map[string]bool{
		"":                          false,
		"disablethp=1":              true,
		"disablethp=0":              false,
		" gctrace=1, disablethp=1":  true,
		"disablethp=1,disablethp=0": false,
		"disablethp":                false,
		"xdisablethp=1":             false,
	} {
		if got := thpDisabled(in); got != want {
			t.Errorf("thpDisabled(%q) = %v, want %v", in, got, want)
		}
	}
}
