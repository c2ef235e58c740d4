package container

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// maxImageBytes bounds the image: a static binary and a CA bundle.
const maxImageBytes = 40 << 20

// TestImage builds the image with scripts/image.sh (offline: a freshly built
// static ./cmd/shardprep on an empty base) and checks its configuration and
// its files. It needs podman: under CI=true a missing podman is a failure.
func TestImage(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("podman is not installed; CI must install it (apt-get install -y podman) to build and check the image")
		}
		t.Skip("podman is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	var suffix [6]byte
	rand.Read(suffix[:])
	tag := "localhost/shardprep-imagetest:" + hex.EncodeToString(suffix[:])
	t.Cleanup(func() {
		exec.Command(podman, "rmi", "--force", tag).Run()
	})

	script, err := filepath.Abs(filepath.Join("..", "scripts", "image.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(),
		"IMAGE="+tag,
		"ENGINE="+podman,
		"GO="+filepath.Join(runtime.GOROOT(), "bin", "go"),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "image "+tag+": ") {
		t.Errorf("scripts/image.sh did not print the image size:\n%s", out)
	}

	// Configuration.
	js, err := exec.CommandContext(ctx, podman, "image", "inspect", "--format", "json", tag).Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var inspect []struct {
		Size   int64
		Os     string
		Config struct {
			Entrypoint []string
			Cmd        []string
			User       string
			Env        []string
		}
	}
	if err := json.Unmarshal(js, &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect output (%v):\n%s", err, js)
	}
	img := inspect[0]
	if want := []string{"/shardprep", "container"}; !slices.Equal(img.Config.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", img.Config.Entrypoint, want)
	}
	if len(img.Config.Cmd) != 0 {
		t.Errorf("cmd %q, want none (SageMaker passes ContainerArguments)", img.Config.Cmd)
	}
	uid, _, _ := strings.Cut(img.Config.User, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Errorf("user %q, want a non-root user", img.Config.User)
	}
	if !slices.Contains(img.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %q lacks SSL_CERT_FILE", img.Config.Env)
	}
	if img.Os != "linux" {
		t.Errorf("os %q", img.Os)
	}
	if img.Size <= 0 || img.Size >= maxImageBytes {
		t.Errorf("image is %d bytes, want under %d", img.Size, maxImageBytes)
	}
	t.Logf("image %s: %d bytes", tag, img.Size)

	// Files: exactly the binary, the CA bundle, passwd, group and /tmp.
	archive := filepath.Join(t.TempDir(), "image.tar")
	if out, err := exec.CommandContext(ctx, podman, "image", "save", "--format", "docker-archive", "-o", archive, tag).CombinedOutput(); err != nil {
		t.Fatalf("podman image save: %v\n%s", err, out)
	}
	files := imageFiles(t, archive)
	var names []string
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	wantNames := []string{"etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt", "shardprep", "tmp"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("image files %q, want %q (no shell, no package manager)", names, wantNames)
	}
	bin := files["shardprep"]
	if bin.mode&0o111 == 0 {
		t.Errorf("/shardprep mode %o is not executable", bin.mode)
	}
	if f, err := elf.NewFile(bytes.NewReader(bin.data)); err != nil {
		t.Errorf("/shardprep is not an ELF binary: %v", err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("/shardprep is dynamically linked; the image has no libc")
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("/shardprep keeps its symbol table; build with -ldflags \"-s -w\"")
		}
	}
	if !bytes.Contains(files["etc/ssl/certs/ca-certificates.crt"].data, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("the CA bundle holds no certificate")
	}
	if !strings.Contains(string(files["etc/passwd"].data), ":"+uid+":") {
		t.Errorf("user %s is not in /etc/passwd:\n%s", uid, files["etc/passwd"].data)
	}
	if tmp := files["tmp"]; !tmp.dir || tmp.mode&0o7777 != 0o1777 {
		t.Errorf("/tmp mode %o (dir %v), want a 1777 directory", tmp.mode&0o7777, tmp.dir)
	}
}

type imageFile struct {
	data []byte
	mode int64
	dir  bool
}

// imageFiles reads a docker-archive and returns the files of its layers,
// later layers replacing earlier ones, keyed by path without a leading "/".
func imageFiles(t *testing.T, archive string) map[string]imageFile {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	members := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", archive, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			members[h.Name] = b
		}
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(members["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("docker-archive manifest.json: %v", err)
	}
	files := map[string]imageFile{}
	for _, layer := range manifest[0].Layers {
		data, ok := members[layer]
		if !ok {
			t.Fatalf("layer %s missing from the archive", layer)
		}
		lr := tar.NewReader(bytes.NewReader(data))
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading layer %s: %v", layer, err)
			}
			name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
			if name == "" {
				continue
			}
			b, err := io.ReadAll(lr)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = imageFile{data: b, mode: h.Mode, dir: h.Typeflag == tar.TypeDir}
		}
	}
	return files
}
