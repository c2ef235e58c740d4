package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// FailurePath is where SageMaker Processing reads the reason a container
// failed (it becomes the job's ExitMessage), relative to the container's "/".
const FailurePath = "opt/ml/output/message"

// MaxFailureBytes is the most SageMaker keeps of a failure reason
// (ExitMessage: "up to one KB in size").
const MaxFailureBytes = 1024

// WriteFailure writes reason to ROOT/opt/ml/output/message as one line of
// valid UTF-8 of at most MaxFailureBytes bytes with no trailing newline:
// line breaks (\r\n, \r, \n) become single spaces, invalid UTF-8 becomes
// U+FFFD, surrounding space is trimmed, and a longer reason is cut on a rune
// boundary and ends in "...". The directory is created if needed. The file
// is written to a temporary name and renamed, so readers see the whole
// message or none. An error (e.g. the non-root image user may not write
// under /opt/ml/output) leaves nothing behind; callers should report it and
// still exit non-zero, which alone fails the job.
func WriteFailure(root, reason string) error {
	msg := FailureMessage(reason)
	dir := filepath.Join(root, filepath.FromSlash(filepath.Dir(FailurePath)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("container: write failure message: %w", err)
	}
	f, err := os.CreateTemp(dir, ".message-*")
	if err != nil {
		return fmt.Errorf("container: write failure message: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(msg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(root, filepath.FromSlash(FailurePath)))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("container: write failure message: %w", err)
	}
	return nil
}

// FailureMessage returns reason as WriteFailure writes it.
func FailureMessage(reason string) string {
	s := strings.ToValidUTF8(reason, "\uFFFD")
	s = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
	s = strings.TrimSpace(s)
	if len(s) <= MaxFailureBytes {
		return s
	}
	const more = "..."
	cut := MaxFailureBytes - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
