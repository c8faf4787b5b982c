// Package release builds bulwark's release artefacts for tests exactly as a
// release does: `make image` (make release: the Go toolchain the Makefile pins,
// -tags noscanner, static linux/amd64 binaries; then hack/image: the webhook and
// scanner images on the non-root base, as an OCI layout). Test packages that run
// at the same time take turns, so the second build comes from the Go build cache.
package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Artefacts are what `make image` wrote.
type Artefacts struct {
	// Dir holds release/ (webhook, scanner, bulwark) and image/ (the OCI layout).
	Dir string
	// Images are the layout's images by name: base, webhook, scanner.
	Images map[string]v1.Image
}

// Binary is the path of a release binary: webhook, scanner or bulwark.
func (a *Artefacts) Binary(name string) string { return filepath.Join(a.Dir, "release", name) }

// Build runs `make image BIN=<temporary directory>` in the repository and reads
// the layout it wrote. It takes a few minutes the first time on a machine (the
// pinned toolchain compiles everything once) and seconds afterwards.
func Build(t testing.TB) *Artefacts {
	t.Helper()
	dir := t.TempDir()
	if out, err := Make(t.Context(), "image", dir); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	p, err := layout.FromPath(filepath.Join(dir, "image"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	a := &Artefacts{Dir: dir, Images: map[string]v1.Image{}}
	for _, desc := range m.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		a.Images[desc.Annotations["org.opencontainers.image.ref.name"]] = img
	}
	for _, want := range []string{"base", "webhook", "scanner"} {
		if a.Images[want] == nil {
			t.Fatalf("make image wrote no %q image (layout holds %d)", want, len(m.Manifests))
		}
	}
	return a
}

// Make runs `make TARGET BIN=dir` in the repository — one such build at a time
// across test processes, so a second one comes from the Go build cache — and
// returns make's output. It is not a sub-make of whatever runs the tests (`make
// test`): MAKEFLAGS and friends are dropped. When ctx ends, make and the builds
// it started are killed.
func Make(ctx context.Context, target, dir string) ([]byte, error) {
	unlock, err := lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root(), target, "BIN="+dir)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
	})
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd.CombinedOutput()
}

// root is the repository's root directory.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// lock serialises builds across test processes.
func lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "bulwark-release-build.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock release build: %w", err)
	}
	return func() { f.Close() }, nil
}
