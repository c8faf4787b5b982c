package grype_test

import (
	"testing"

	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// BenchmarkScanCold scans one small Alpine image (three packages, one finding)
// from the in-process TLS registry through the guarded client, every time from
// the registry: pull, unpack, catalog with syft, match with grype. The database
// is opened once, before the timer starts:
//
//	go test ./pkg/scan/grype -run XXX -bench ScanCold -benchtime 20x
func BenchmarkScanCold(b *testing.B) {
	dir := b.TempDir()
	vulndb.Write(b, dir, allVulns...)
	e := newEnv(b, dir, grype.DBOptions{})
	image := e.reg.Push(b, "bench/app", "", vulndb.Alpine(b, vulndb.AMD64, "3.20.3", alpinePkgs...))
	b.ResetTimer()
	for range b.N {
		r, err := e.scanner.Scan(b.Context(), e.request(b, image))
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Findings) != 1 {
			b.Fatalf("%d findings, want 1", len(r.Findings))
		}
	}
}
