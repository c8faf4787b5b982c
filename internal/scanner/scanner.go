// Package scanner starts bulwark's scan worker with its Grype database: the
// scanner Deployment (cmd/scanner) and the webhook's embedded mode share it. It
// links grype and syft, so the webhook's default build leaves it out (build tag
// noscanner; see cmd/webhook/app).
package scanner

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bulwark-dev/bulwark/internal/wire"
	kubeevents "github.com/bulwark-dev/bulwark/pkg/kube"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/pkg/scan/worker"
)

// Start opens the database and runs a scan worker until ctx ends, reporting the
// worker's end on the channel. A database directory without a database, with an
// update URL, is a scanner Deployment's empty volume: Start then returns at once
// and the newest database is downloaded into it first, retried with backoff
// while the listing cannot be reached (scans wait meanwhile); otherwise the
// database is opened before Start returns.
func Start(ctx context.Context, kube *rest.Config, p *policy.Policy, roots *x509.CertPool, c wire.ScannerConfig, metrics prometheus.Registerer, log logr.Logger) (<-chan error, error) {
	ro := wire.RegistryOptions(p, roots, metrics)
	rc, err := registry.New(ro)
	if err != nil {
		return nil, fmt.Errorf("registry access: %w", err)
	}
	client, err := kubernetes.NewForConfig(kube)
	if err != nil {
		return nil, err
	}
	dbo := grype.DBOptions{Metrics: metrics, Log: log.WithName("db")}
	if c.DBUpdateURL != "" {
		u, err := url.Parse(c.DBUpdateURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("database update URL %q: want https://host/path", c.DBUpdateURL)
		}
		// The URL's host is allowed by naming it; the address checks and the
		// redirect rules of the policy's registry section still apply.
		tr, err := rc.DownloadTransport(u.Host)
		if err != nil {
			return nil, fmt.Errorf("database update URL: %w", err)
		}
		dbo.ListingURL = c.DBUpdateURL
		dbo.HTTPClient = &http.Client{Transport: tr, Timeout: 10 * time.Minute}
	}
	// start builds the scanner and the worker on db and runs them until ctx ends.
	start := func(db *grype.DB) (func() error, error) {
		sc, err := grype.New(grype.Options{DB: db, Metrics: metrics})
		if err != nil {
			return nil, err
		}
		dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_scanner_events_dropped_total",
			Help: "Events the scanner dropped because its queue was full."})
		if metrics != nil {
			metrics.MustRegister(dropped)
		}
		events := kubeevents.NewEventQueue(client, 1000, dropped)
		w, err := worker.New(kube, worker.Options{
			Scanner: sc, Registry: rc, Keychains: registry.NewKeychains(client), ID: c.ID,
			ClaimTTL: c.ClaimTTL, Concurrency: c.Concurrency, Limits: c.Limits,
			Threshold: p.Checks.Vulnerabilities.ScanThreshold(), DBBuilt: db.Built, Log: log.WithName("worker"),
			Notify: notifyRunning(client, events, log), AlertThreshold: scan.Severity(p.Checks.Vulnerabilities.Threshold),
		})
		if err != nil {
			return nil, err
		}
		return func() error {
			go events.Run(ctx)
			if c.DBUpdateURL != "" && c.DBUpdateInterval > 0 {
				go updateLoop(ctx, db, c.DBUpdateInterval, log)
			}
			log.Info("Scanner running", "db", c.DBDir, "dbBuilt", db.Built(), "scanner", grype.Version())
			return w.Run(ctx)
		}, nil
	}
	done := make(chan error, 1)
	if _, err := os.Stat(filepath.Join(c.DBDir, "import.json")); !errors.Is(err, fs.ErrNotExist) || c.DBUpdateURL == "" {
		db, err := grype.OpenDB(c.DBDir, dbo)
		if err != nil {
			return nil, fmt.Errorf("vulnerability database %s: %w", c.DBDir, err)
		}
		run, err := start(db)
		if err != nil {
			db.Close()
			return nil, err
		}
		go func() { defer db.Close(); done <- run() }()
		return done, nil
	}
	go func() {
		db, err := fetchDB(ctx, c.DBDir, dbo, log)
		if err != nil {
			done <- err
			return
		}
		defer db.Close()
		run, err := start(db)
		if err != nil {
			done <- err
			return
		}
		done <- run()
	}()
	return done, nil
}

// fetchDB downloads the newest database into dir, where its updates go too,
// after removing the downloads an earlier run of the process left there (a
// killed process does not clean up). It retries with backoff until ctx ends.
func fetchDB(ctx context.Context, dir string, o grype.DBOptions, log logr.Logger) (*grype.DB, error) {
	old, err := filepath.Glob(filepath.Join(dir, "grype-db-*"))
	if err != nil {
		return nil, err
	}
	for _, d := range old {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("remove an earlier download: %w", err)
		}
	}
	o.WorkDir = dir
	var db *grype.DB
	backoff := wait.Backoff{Duration: 5 * time.Second, Factor: 2, Jitter: 0.1, Cap: 5 * time.Minute, Steps: math.MaxInt32}
	err = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		var err error
		if db, err = grype.FetchDB(ctx, o); err != nil {
			log.Error(err, "No vulnerability database yet; retrying", "dir", dir)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("vulnerability database: %s holds none and none was downloaded: %w", dir, err)
	}
	return db, nil
}

// updateLoop checks for a newer database every interval.
func updateLoop(ctx context.Context, db *grype.DB, every time.Duration, log logr.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if updated, err := db.Update(ctx); err != nil {
				log.Error(err, "Vulnerability database update failed")
			} else if updated {
				log.Info("Vulnerability database updated", "built", db.Built())
			}
		}
	}
}
