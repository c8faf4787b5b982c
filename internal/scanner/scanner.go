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
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
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

// Start opens the database and runs a scan worker until ctx ends; it
// returns once the worker runs, and reports the worker's end on the channel.
func Start(ctx context.Context, kube *rest.Config, p *policy.Policy, roots *x509.CertPool, c wire.ScannerConfig, metrics prometheus.Registerer, log logr.Logger) (<-chan error, error) {
	ro := wire.RegistryOptions(p, roots, metrics)
	rc, err := registry.New(ro)
	if err != nil {
		return nil, fmt.Errorf("registry access: %w", err)
	}
	dbo := grype.DBOptions{Metrics: metrics, Log: log.WithName("db")}
	if c.DBUpdateURL != "" {
		// Downloads go next to the database, on the volume sized for it.
		dbo.WorkDir = c.DBDir
		dbo.ListingURL = c.DBUpdateURL
		dbo.HTTPClient = &http.Client{Transport: rc.Transport(), Timeout: 10 * time.Minute}
	}
	db, err := openDB(ctx, c, dbo)
	if err != nil {
		return nil, err
	}
	sc, err := grype.New(grype.Options{DB: db, Metrics: metrics})
	if err != nil {
		db.Close()
		return nil, err
	}
	client, err := kubernetes.NewForConfig(kube)
	if err != nil {
		db.Close()
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
		db.Close()
		return nil, err
	}
	done := make(chan error, 1)
	go events.Run(ctx)
	go func() {
		defer db.Close()
		if c.DBUpdateURL != "" && c.DBUpdateInterval > 0 {
			go updateLoop(ctx, db, c.DBUpdateInterval, log)
		}
		done <- w.Run(ctx)
	}()
	log.Info("Scanner running", "db", c.DBDir, "dbBuilt", db.Built(), "scanner", grype.Version())
	return done, nil
}

// openDB opens the database in c.DBDir; when the directory holds none and an
// update URL is configured, it downloads the newest one into the directory first
// (a scanner Deployment starts with an empty volume). Never on the admission path:
// scans wait for it.
func openDB(ctx context.Context, c wire.ScannerConfig, o grype.DBOptions) (*grype.DB, error) {
	if _, err := os.Stat(filepath.Join(c.DBDir, "import.json")); errors.Is(err, fs.ErrNotExist) && c.DBUpdateURL != "" {
		db, err := grype.FetchDB(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("vulnerability database: %s holds none, and %w", c.DBDir, err)
		}
		return db, nil
	}
	db, err := grype.OpenDB(c.DBDir, o)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", c.DBDir, err)
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
