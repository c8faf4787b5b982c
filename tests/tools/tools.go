// Package tools runs the command-line tools the manifest tests need — helm and
// kustomize, built from the module proxy by hack/build-tools.sh (once; cached
// outside the repository) — for deploy/'s lint and tests/e2e's chart tests.
package tools

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Path returns the path of name (helm or kustomize), building the tools first if
// this machine has not yet.
func Path(t testing.TB, name string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(root(), "hack", "build-tools.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build helm and kustomize: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), name)
}

// Run runs bin with args and returns its standard output; an error carries the
// tool's standard error.
func Run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// root is the repository's root directory.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
