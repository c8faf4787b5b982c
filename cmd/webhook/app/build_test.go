package app

import (
	"os/exec"
	"strings"
	"testing"
)

// TestReleaseBuildLinksNoScanner holds the release webhook (-tags noscanner) to
// what keeps it small: none of grype, syft, stereoscope or SQLite is linked, while
// the default build still has the embedded scanner.
func TestReleaseBuildLinksNoScanner(t *testing.T) {
	deps := func(tags string) []string {
		out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "-tags", tags, "github.com/bulwark-dev/bulwark/cmd/webhook").Output()
		if err != nil {
			t.Fatalf("go list -tags %q: %v", tags, err)
		}
		return strings.Fields(string(out))
	}
	scannerCode := func(pkg string) bool {
		return strings.HasPrefix(pkg, "github.com/anchore/") || strings.HasPrefix(pkg, "modernc.org/sqlite") ||
			pkg == "github.com/bulwark-dev/bulwark/internal/scanner" || strings.HasPrefix(pkg, "github.com/bulwark-dev/bulwark/pkg/scan/grype")
	}
	var linked []string
	for _, p := range deps("noscanner") {
		if scannerCode(p) {
			linked = append(linked, p)
		}
	}
	if len(linked) > 0 {
		t.Errorf("the release webhook links %d scanner packages, e.g. %v", len(linked), linked[:min(5, len(linked))])
	}
	embedded := 0
	for _, p := range deps("") {
		if scannerCode(p) {
			embedded++
		}
	}
	if embedded == 0 {
		t.Error("the default build has no embedded scanner")
	}
}
