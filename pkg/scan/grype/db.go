package grype

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/vulnerability"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/afero"
)

const (
	// DefaultListingURL is grype's own distribution point; Update reads
	// <url>/v6/latest.json. A mirror serves the same layout.
	DefaultListingURL = "https://grype.anchore.io/databases"
	// DefaultMaxArchiveBytes bounds a downloaded database archive.
	DefaultMaxArchiveBytes = 1 << 30
	// DefaultMaxDBBytes bounds the database file unpacked from an archive.
	DefaultMaxDBBytes = 8 << 30
	// maxListingBytes bounds the listing document (a few hundred bytes).
	maxListingBytes = 1 << 20
)

// DBOptions configure a DB. The zero value opens a directory and cannot update.
type DBOptions struct {
	// ListingURL is where Update looks for a newer database: a URL ending in
	// .json is the listing itself, any other gets /v6/latest.json appended.
	// DefaultListingURL when empty.
	ListingURL string
	// HTTPClient makes Update's requests, so the caller's egress rules apply
	// (no proxy from the environment unless the client says so). Nil: Update
	// fails; the database is never downloaded implicitly.
	HTTPClient *http.Client
	// WorkDir holds the databases Update downloads, each in a directory of its
	// own, removed when a newer one replaces it. os.TempDir() when empty.
	WorkDir string
	// MaxArchiveBytes and MaxDBBytes bound a download and what it unpacks to;
	// DefaultMaxArchiveBytes and DefaultMaxDBBytes when zero.
	MaxArchiveBytes, MaxDBBytes int64
	// Metrics, if set, receives bulwark_scan_db_built_timestamp_seconds.
	Metrics prometheus.Registerer
	// Log receives the DB's few events (updated, failed to close). Zero: discarded.
	Log logr.Logger
}

// DB is the grype v6 vulnerability database every scan matches against: opened
// once and shared. Update and Load replace it atomically: a scan holds the
// database it started matching with until it finishes, and the replaced one is
// closed once its last scan is done, so no scan fails because of a swap. A DB is
// safe for concurrent use.
type DB struct {
	opts     DBOptions
	cur      atomic.Pointer[dbHandle]
	updateMu sync.Mutex // one Update at a time
	mu       sync.Mutex // guards closed; held for each swap
	closed   bool
	built    prometheus.Gauge
}

// dbHandle is one open database. refs counts the DB's own reference (while it is
// current) and one per scan using it; the last release closes it.
type dbHandle struct {
	provider vulnerability.Provider
	built    time.Time
	dir      string
	owned    bool // written by Update: removed once closed
	refs     atomic.Int64
	log      logr.Logger
}

// OpenDB opens the grype v6 database in dir, which holds vulnerability.db and
// import.json as grype installs them (`grype db import`, or a previous Update).
// vulnerability.db is checked against the digest import.json records, once.
// It never downloads anything.
func OpenDB(dir string, o DBOptions) (*DB, error) {
	d, err := newDB(o)
	if err != nil {
		return nil, err
	}
	h, err := openVerified(dir)
	if err != nil {
		return nil, err
	}
	d.install(h)
	return d, nil
}

// FetchDB downloads the newest database the listing offers into a new directory
// under o.WorkDir, checked as Update checks it, and opens it: how a scanner with
// an empty database directory starts. It needs o.HTTPClient.
func FetchDB(ctx context.Context, o DBOptions) (*DB, error) {
	d, err := newDB(o)
	if err != nil {
		return nil, err
	}
	if d.opts.HTTPClient == nil {
		return nil, errors.New("fetch vulnerability DB: no HTTP client configured")
	}
	listingURL := latestURL(d.opts.ListingURL)
	latest, err := d.fetchListing(ctx, listingURL)
	if err == nil {
		var h *dbHandle
		if h, err = d.fetch(ctx, listingURL, latest); err == nil {
			d.install(h)
			d.opts.Log.Info("Vulnerability DB fetched", "built", h.built, "from", listingURL)
			return d, nil
		}
	}
	return nil, fmt.Errorf("fetch vulnerability DB from %s: %w", listingURL, err)
}

// newDB applies o's defaults and registers the DB's metric.
func newDB(o DBOptions) (*DB, error) {
	if o.ListingURL == "" {
		o.ListingURL = DefaultListingURL
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
	}
	if o.MaxArchiveBytes == 0 {
		o.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if o.MaxDBBytes == 0 {
		o.MaxDBBytes = DefaultMaxDBBytes
	}
	if o.MaxArchiveBytes < 0 || o.MaxDBBytes < 0 {
		return nil, fmt.Errorf("vulnerability DB size limits %d, %d: must not be negative", o.MaxArchiveBytes, o.MaxDBBytes)
	}
	d := &DB{opts: o}
	if o.Metrics != nil {
		g := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_scan_db_built_timestamp_seconds",
			Help: "When the vulnerability database in use was built, in seconds since the epoch.",
		})
		var err error
		if d.built, err = register(o.Metrics, g); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// openVerified opens dir after checking vulnerability.db against import.json.
func openVerified(dir string) (*dbHandle, error) {
	fs := afero.NewOsFs()
	meta, err := v6.ReadImportMetadata(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("open vulnerability DB %s: %w", dir, err)
	}
	got, err := v6.CalculateDBDigest(fs, filepath.Join(dir, v6.VulnerabilityDBFileName))
	if err != nil {
		return nil, fmt.Errorf("open vulnerability DB %s: %w", dir, err)
	}
	if got != meta.Digest {
		return nil, fmt.Errorf("open vulnerability DB %s: %s has digest %s, import.json records %s",
			dir, v6.VulnerabilityDBFileName, got, meta.Digest)
	}
	return openDir(dir)
}

// openDir opens the database in dir read-only.
func openDir(dir string) (*dbHandle, error) {
	r, err := v6.NewReader(v6.Config{DBDirPath: dir})
	if err != nil {
		return nil, fmt.Errorf("open vulnerability DB %s: %w", dir, err)
	}
	meta, err := r.GetDBMetadata()
	if err == nil && (meta == nil || meta.BuildTimestamp == nil) {
		err = errors.New("no build time recorded")
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open vulnerability DB %s: %w", dir, err)
	}
	return &dbHandle{provider: v6.NewVulnerabilityProvider(r), built: meta.BuildTimestamp.UTC(), dir: dir}, nil
}

// Load replaces the database in use by the one in dir (checked as OpenDB checks
// it), whatever its build time: the way to roll back, or to install one copied
// in by hand on an air-gapped cluster.
func (d *DB) Load(dir string) error {
	h, err := openVerified(dir)
	if err != nil {
		return err
	}
	return d.replace(h)
}

// replace makes h current unless d is closed.
func (d *DB) replace(h *dbHandle) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		h.refs.Store(1)
		h.release()
		return errors.New("vulnerability DB closed")
	}
	d.install(h)
	return nil
}

// install makes h current and drops the DB's reference to the one it replaces.
func (d *DB) install(h *dbHandle) {
	h.log = d.opts.Log
	h.refs.Store(1)
	old := d.cur.Swap(h)
	if d.built != nil {
		d.built.Set(float64(h.built.Unix()))
	}
	if old != nil {
		old.release()
	}
}

// acquire returns the current database with a reference the caller must
// release.
func (d *DB) acquire() (*dbHandle, error) {
	for {
		h := d.cur.Load()
		if h == nil {
			return nil, errors.New("vulnerability DB closed")
		}
		// A handle whose count reached zero was replaced and is closing: reload.
		// It is never current again, so this loop ends.
		if n := h.refs.Load(); n > 0 && h.refs.CompareAndSwap(n, n+1) {
			return h, nil
		}
	}
}

// release drops one reference; the last one closes the database.
func (h *dbHandle) release() {
	if h.refs.Add(-1) != 0 {
		return
	}
	if err := h.provider.Close(); err != nil {
		h.log.Error(err, "Vulnerability DB not closed cleanly", "dir", h.dir)
	}
	if h.owned {
		if err := os.RemoveAll(h.dir); err != nil {
			h.log.Error(err, "Vulnerability DB directory not removed", "dir", h.dir)
		}
	}
}

// Built returns when the database in use was built; zero after Close.
func (d *DB) Built() time.Time {
	if h := d.cur.Load(); h != nil {
		return h.built
	}
	return time.Time{}
}

// Age returns how long ago the database in use was built.
func (d *DB) Age() time.Duration { return time.Since(d.Built()) }

// Close closes the database once the scans using it are done; scans started
// after Close fail, and so do Update and Load.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if old := d.cur.Swap(nil); old != nil {
		old.release()
	}
	return nil
}

// register registers c, or returns the collector of the same description that
// another DB or Scanner registered already.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	if err := r.Register(c); err != nil {
		if already, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, fmt.Errorf("register scan metrics: %w", err)
	}
	return c, nil
}
