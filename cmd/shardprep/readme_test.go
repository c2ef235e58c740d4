package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeBlock is a shell block of the README: its info string after
// "```" and its text.
type readmeBlock struct {
	line int // of the opening fence
	info string
	text string
}

// readmeShellBlocks returns the README's ```sh blocks, in order.
func readmeShellBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{line: n, info: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
		case cur != nil && line == "```":
			if lang, _, _ := strings.Cut(cur.info, " "); lang == "sh" {
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// minioInstalled reports whether scripts/minio.sh install has put minio
// and mc into the cache that scripts/minio.sh start looks in.
func minioInstalled() bool {
	cache := os.Getenv("SHARDPREP_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "shardprep")
	}
	for _, name := range []string{"minio", "mc"} {
		if _, err := os.Stat(filepath.Join(cache, "bin", name)); err != nil {
			return false
		}
	}
	return true
}

// TestReadmeCommands runs the README's shell blocks in order, as a user
// would from a clone (a folder with the clone's cmd/ and scripts/), with
// the built binary first on the PATH as shardprep ("go run
// ./cmd/shardprep" stands for it), and asserts that each exits 0. A block
// whose info string says "no-test: why" is left out; "needs-minio" runs
// when scripts/minio.sh install has built MinIO.
func TestReadmeCommands(t *testing.T) {
	bin := shardprepBin(t)
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"cmd", "scripts"} {
		if err := os.Symlink(filepath.Join(repo, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	env := baseEnv("PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"))
	if c := os.Getenv("SHARDPREP_CACHE"); c != "" {
		env = append(env, "SHARDPREP_CACHE="+c)
	}
	blocks := readmeShellBlocks(t, filepath.Join(repo, "README.md"))
	if len(blocks) < 5 {
		t.Fatalf("found %d shell blocks in the README", len(blocks))
	}
	ran := 0
	for _, b := range blocks {
		_, marker, _ := strings.Cut(b.info, " ")
		switch {
		case marker == "":
		case strings.HasPrefix(marker, "no-test: ") && len(marker) > len("no-test: "):
			t.Logf("README line %d: not run (%s)", b.line, marker)
			continue
		case marker == "needs-minio":
			if !minioInstalled() {
				t.Logf("README line %d: not run: MinIO is not installed (scripts/minio.sh install)", b.line)
				continue
			}
		default:
			t.Fatalf("README line %d: unknown marker %q (want none, \"no-test: why\" or \"needs-minio\")", b.line, marker)
		}
		script := strings.ReplaceAll(b.text, "go run ./cmd/shardprep", "shardprep")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("README line %d: %v\n%s\noutput:\n%s", b.line, err, b.text, out)
		}
		ran++
	}
	if ran < 3 {
		t.Errorf("ran %d README blocks", ran)
	}
}
