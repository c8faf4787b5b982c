package grype_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// TestSwapDuringScans runs 20 scans concurrently while the database is
// replaced twice: every scan succeeds, on one of the three databases.
func TestSwapDuringScans(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	dirs := make([]string, 3)
	builts := make([]time.Time, 3)
	for i := range dirs {
		dirs[i] = t.TempDir()
		builts[i] = start.Add(time.Duration(i) * time.Minute)
		vulndb.WriteBuilt(t, dirs[i], builts[i], criticalApk)
	}
	e := newEnv(t, dirs[0], grype.DBOptions{})
	image := e.reg.Push(t, "app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...))

	// Swap after the first scan finished, and again after half of them: the
	// scans in flight then are at every stage, matching included.
	const scans = 20
	var wg sync.WaitGroup
	finished := make(chan int, scans)
	errs := make([]error, scans)
	reports := make([]*scan.Report, scans)
	for i := range scans {
		wg.Go(func() {
			reports[i], errs[i] = e.scanner.Scan(t.Context(), e.request(t, image))
			finished <- i
		})
	}
	first := <-finished
	if err := e.db.Load(dirs[1]); err != nil {
		t.Fatal(err)
	}
	for range scans/2 - 1 {
		<-finished
	}
	if err := e.db.Load(dirs[2]); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	want := []scan.Finding{{ID: "CVE-2024-0001", Severity: scan.SeverityCritical, CVSS: 9.8, Package: "libcrypto3",
		Type: "apk", Installed: "3.3.1-r0", FixedIn: "3.3.2-r0", Platform: "linux/amd64"}}
	for i, err := range errs {
		if err != nil {
			t.Errorf("scan %d: %v", i, err)
			continue
		}
		if diff := cmp.Diff(want, reports[i].Findings); diff != "" {
			t.Errorf("scan %d findings (-want +got):\n%s", i, diff)
		}
		if !slices.ContainsFunc(builts, reports[i].DBBuilt.Equal) {
			t.Errorf("scan %d: DBBuilt %s is none of the databases' %v", i, reports[i].DBBuilt, builts)
		}
	}
	if r := reports[first]; r != nil && !r.DBBuilt.Equal(builts[0]) {
		t.Errorf("the scan that finished before the first swap used the DB built %s, want %s", r.DBBuilt, builts[0])
	}
	perDB := map[time.Time]int{}
	for _, r := range reports {
		if r != nil {
			perDB[r.DBBuilt]++
		}
	}
	t.Logf("scans per database: %v", perDB)
	if got := e.db.Built(); !got.Equal(builts[2]) {
		t.Errorf("Built() = %s after the swaps, want %s", got, builts[2])
	}
	if got := e.metric(t, "bulwark_scans_total", "result=ok"); got != scans {
		t.Errorf("bulwark_scans_total{result=ok} = %v, want %d", got, scans)
	}
}

// TestUpdate updates the database from a listing in grype's distribution format
// served over HTTP: a newer database with a good checksum replaces the one in
// use; one whose archive does not match the listing's checksum is refused and
// the one in use kept.
func TestUpdate(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	old := t.TempDir()
	vulndb.WriteBuilt(t, old, start) // knows nothing
	root, work := t.TempDir(), t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(srv.Close)
	e := newEnv(t, old, grype.DBOptions{ListingURL: srv.URL, HTTPClient: srv.Client(), WorkDir: work})
	db := e.db
	image := e.reg.Push(t, "app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...))
	findings := func() int {
		t.Helper()
		r, err := e.scanner.Scan(t.Context(), e.request(t, image))
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Findings)
	}
	// publish writes a database built at built and publishes it under root.
	publish := func(built time.Time, root string) string {
		dir := t.TempDir()
		vulndb.WriteBuilt(t, dir, built, criticalApk)
		return vulndb.Publish(t, dir, root)
	}
	if n := findings(); n != 0 {
		t.Fatalf("%d findings before the update, want 0", n)
	}

	// A newer database: installed, and the next scan uses it.
	publish(start.Add(time.Minute), root)
	updated, err := db.Update(t.Context())
	if err != nil || !updated {
		t.Fatalf("Update() = %v, %v; want true, nil", updated, err)
	}
	if got, want := db.Built(), start.Add(time.Minute); !got.Equal(want) {
		t.Errorf("Built() = %s after the update, want %s", got, want)
	}
	if n := findings(); n != 1 {
		t.Errorf("%d findings after the update, want 1", n)
	}

	// The same listing again: nothing newer, nothing done.
	if updated, err := db.Update(t.Context()); err != nil || updated {
		t.Errorf("second Update() = %v, %v; want false, nil", updated, err)
	}

	// A newer listing whose archive was swapped for another (valid) one.
	archive := publish(start.Add(2*time.Minute), root)
	other := publish(start.Add(3*time.Minute), t.TempDir())
	if err := os.Rename(other, archive); err != nil {
		t.Fatal(err)
	}
	updated, err = db.Update(t.Context())
	if err == nil || !strings.Contains(err.Error(), "checksum") || updated {
		t.Errorf("Update() with a substituted archive = %v, %v; want false and a checksum error", updated, err)
	}
	if got, want := db.Built(), start.Add(time.Minute); !got.Equal(want) {
		t.Errorf("Built() = %s after the refused update, want %s (kept)", got, want)
	}
	if n := findings(); n != 1 {
		t.Errorf("%d findings after the refused update, want 1", n)
	}

	// Another good one replaces the first update, whose directory is removed;
	// the refused download left nothing behind.
	publish(start.Add(4*time.Minute), root)
	if updated, err := db.Update(t.Context()); err != nil || !updated {
		t.Fatalf("Update() = %v, %v; want true, nil", updated, err)
	}
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("work dir holds %d entries, want 1 (the database in use)", len(entries))
	}
	// What Update installed reopens after a restart.
	reopened, err := grype.OpenDB(filepath.Join(work, entries[0].Name()), grype.DBOptions{})
	if err != nil {
		t.Fatalf("reopen the updated database: %v", err)
	}
	reopened.Close()
}

// TestUpdateNeedsClient: without an HTTP client nothing is ever downloaded.
func TestUpdateNeedsClient(t *testing.T) {
	dir := t.TempDir()
	vulndb.Write(t, dir)
	db, err := grype.OpenDB(dir, grype.DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Update(t.Context()); err == nil {
		t.Error("Update() without an HTTP client succeeded")
	}
}

// TestOpenDBChecksDigest: a vulnerability.db changed after import.json recorded
// its digest is refused.
func TestOpenDBChecksDigest(t *testing.T) {
	dir := t.TempDir()
	vulndb.Write(t, dir, criticalApk)
	f, err := os.OpenFile(filepath.Join(dir, "vulnerability.db"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("tampered")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := grype.OpenDB(dir, grype.DBOptions{}); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("OpenDB of a tampered database: %v, want a digest error", err)
	}
	if _, err := grype.OpenDB(t.TempDir(), grype.DBOptions{}); err == nil {
		t.Error("OpenDB of an empty directory succeeded")
	}
}

// TestScanAfterClose: a closed DB fails scans rather than matching nothing.
func TestScanAfterClose(t *testing.T) {
	dir := t.TempDir()
	vulndb.Write(t, dir, criticalApk)
	e := newEnv(t, dir, grype.DBOptions{})
	image := e.reg.Push(t, "app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...))
	e.db.Close()
	if _, err := e.scanner.Scan(t.Context(), e.request(t, image)); err == nil || errors.Is(err, scan.ErrLimits) {
		t.Errorf("Scan after Close: %v, want an error", err)
	}
}

// TestFetchDB: a scanner whose database directory is empty starts from the
// listing: the newest database is downloaded, checked and opened; a listing
// whose archive fails its checksum, or no HTTP client, leaves no database.
func TestFetchDB(t *testing.T) {
	root := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	t.Cleanup(srv.Close)
	built := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	src := t.TempDir()
	vulndb.WriteBuilt(t, src, built, criticalApk)
	archive := vulndb.Publish(t, src, root)

	if _, err := grype.FetchDB(t.Context(), grype.DBOptions{ListingURL: srv.URL, WorkDir: t.TempDir()}); err == nil {
		t.Error("FetchDB() without an HTTP client succeeded")
	}

	work := t.TempDir()
	db, err := grype.FetchDB(t.Context(), grype.DBOptions{ListingURL: srv.URL, HTTPClient: srv.Client(), WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	if !db.Built().Equal(built) {
		t.Errorf("Built() = %s, want %s", db.Built(), built)
	}
	e := newEnv(t, src, grype.DBOptions{})
	sc, err := grype.New(grype.Options{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	image := e.reg.Push(t, "app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", alpinePkgs...))
	r, err := sc.Scan(t.Context(), e.request(t, image))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 {
		t.Errorf("%d findings with the fetched database, want 1", len(r.Findings))
	}
	db.Close()

	// The archive swapped for another valid one: its checksum no longer matches.
	other := t.TempDir()
	vulndb.WriteBuilt(t, other, built.Add(time.Minute))
	if err := os.Rename(vulndb.Publish(t, other, t.TempDir()), archive); err != nil {
		t.Fatal(err)
	}
	if _, err := grype.FetchDB(t.Context(), grype.DBOptions{ListingURL: srv.URL, HTTPClient: srv.Client(), WorkDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("FetchDB() of a substituted archive: %v, want a checksum error", err)
	}
}
