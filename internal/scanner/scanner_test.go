package scanner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// TestFetchDBFillsAnEmptyVolume: a scanner whose database directory is empty
// downloads the newest database into it, after removing what an earlier,
// killed run left there; while the listing cannot be reached it keeps trying
// until its context ends, and then says why it has no database.
func TestFetchDBFillsAnEmptyVolume(t *testing.T) {
	root := t.TempDir()
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		http.FileServer(http.Dir(root)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	src := t.TempDir()
	built := vulndb.Write(t, src)
	vulndb.Publish(t, src, root)

	dir := t.TempDir()
	leftover := filepath.Join(dir, "grype-db-123")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	o := grype.DBOptions{ListingURL: srv.URL, HTTPClient: srv.Client()}
	db, err := fetchDB(t.Context(), dir, o, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if !db.Built().Equal(built) {
		t.Errorf("Built() = %s, want %s", db.Built(), built)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the earlier run's download is still there: %v", err)
	}
	if got, _ := filepath.Glob(filepath.Join(dir, "grype-db-*")); len(got) != 1 {
		t.Errorf("database directory holds %v, want the one download", got)
	}
	db.Close()

	down.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := fetchDB(ctx, t.TempDir(), o, logr.Discard()); err == nil {
		t.Error("fetchDB succeeded with the listing down")
	}
}
