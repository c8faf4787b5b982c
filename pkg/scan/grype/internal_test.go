package grype

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anchore/grype/grype/vulnerability"

	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// TestGrypeVersion keeps the version reported where the binary has no module
// list equal to the one go.mod requires.
func TestGrypeVersion(t *testing.T) {
	b, err := os.ReadFile("../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := "\tgithub.com/anchore/grype " + grypeVersion + "\n"
	if !strings.Contains(string(b), want) {
		t.Errorf("go.mod does not require github.com/anchore/grype %s: update grypeVersion", grypeVersion)
	}
}

// TestReplaceKeepsHeldDatabase: a database replaced while a scan holds it stays
// open for that scan, and is closed when the scan releases it.
func TestReplaceKeepsHeldDatabase(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	vulndb.WriteBuilt(t, first, time.Now().Add(-time.Hour), vulndb.Vuln{ID: "CVE-2024-0001", Severity: "critical",
		Ecosystem: "apk", Distro: "alpine", Version: "3.20", Package: "libcrypto3", Constraint: "< 1"})
	vulndb.Write(t, second)
	db, err := OpenDB(first, DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	held, err := db.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Load(second); err != nil {
		t.Fatal(err)
	}
	if db.Built().Equal(held.built) {
		t.Fatal("Load did not replace the database")
	}
	usable := func() error {
		_, err := held.provider.(vulnerability.StoreMetadataProvider).DataProvenance()
		return err
	}
	if err := usable(); err != nil {
		t.Errorf("replaced database closed while a scan holds it: %v", err)
	}
	held.release()
	if err := usable(); err == nil {
		t.Error("replaced database still open after its last scan released it")
	}
	if n := held.refs.Load(); n != 0 {
		t.Errorf("replaced database has %d references, want 0", n)
	}
}
