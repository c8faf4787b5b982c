package vulndb_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"testing"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"

	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// TestGzipBomb: the bomb expands to a tar of one file of the size asked, and
// its declared digests are those of what it holds.
func TestGzipBomb(t *testing.T) {
	const size = 3<<20 + 100 // two full chunks and a partial one
	bomb := vulndb.GzipBomb(t, size)
	rc, err := bomb.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(rc, h))
	hdr, err := tr.Next()
	if err != nil || hdr.Size != size {
		t.Fatalf("first entry %+v, %v; want one of %d bytes", hdr, err, size)
	}
	if n, err := io.Copy(io.Discard, tr); err != nil || n != size {
		t.Fatalf("read %d bytes, %v; want %d", n, err, size)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("second entry: %v, want the end of the archive", err)
	}
	io.Copy(h, rc)
	diffID, err := bomb.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		t.Errorf("DiffID %s, the tar hashes to %s", diffID.Hex, got)
	}
	compressed, err := bomb.Size()
	if err != nil || compressed > size/500 {
		t.Errorf("compressed size %d, %v; want at most %d", compressed, err, size/500)
	}
}

// TestWriteBuilt: the database records the build time asked for.
func TestWriteBuilt(t *testing.T) {
	dir := t.TempDir()
	built := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	vulndb.WriteBuilt(t, dir, built, vulndb.Vuln{ID: "GHSA-xxxx", Severity: "high", Ecosystem: "go-module",
		Package: "example.com/mod", Constraint: "< 1.2.3", FixedIn: "1.2.3"})
	desc, err := v6.ReadDescription(filepath.Join(dir, v6.VulnerabilityDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !desc.Built.Equal(built) {
		t.Errorf("built %s, want %s", desc.Built, built)
	}
}
