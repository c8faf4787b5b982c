// Package wire builds the parts the webhook and the scanner share from their
// configuration: registry access under the policy's egress rules, and the scan
// worker with its Grype database. Only cmd/ uses it.
package wire

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	kubeevents "github.com/bulwark-dev/bulwark/pkg/kube"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/pkg/scan/worker"
)

// RegistryOptions are the options of a registry client under p's egress rules.
func RegistryOptions(p *policy.Policy, roots *x509.CertPool, metrics prometheus.Registerer) registry.Options {
	return registry.Options{
		Allow:          p.Registry.Allow,
		AllowAddresses: p.Registry.Prefixes(),
		Insecure:       p.Registry.Insecure,
		Mirrors:        p.Registry.Mirrors,
		RootCAs:        roots,
		Timeout:        p.Registry.Timeout.Duration,
		Metrics:        metrics,
	}
}

// ScannerConfig configures a scan worker.
type ScannerConfig struct {
	// DBDir holds the grype v6 database to open (vulnerability.db, import.json).
	DBDir string
	// DBUpdateURL, if set, is checked every DBUpdateInterval for a newer
	// database (grype's listing format); the download goes through the egress
	// guard's transport (its host must be on registry.allow).
	DBUpdateURL      string
	DBUpdateInterval time.Duration
	Concurrency      int
	ClaimTTL         time.Duration
	Limits           scan.Limits
	ID               string
}

// StartScanner opens the database and runs a scan worker until ctx ends; it
// returns once the worker runs, and reports the worker's end on the channel.
func StartScanner(ctx context.Context, kube *rest.Config, p *policy.Policy, roots *x509.CertPool, c ScannerConfig, metrics prometheus.Registerer, log logr.Logger) (<-chan error, error) {
	ro := RegistryOptions(p, roots, metrics)
	rc, err := registry.New(ro)
	if err != nil {
		return nil, fmt.Errorf("registry access: %w", err)
	}
	dbo := grype.DBOptions{Metrics: metrics, Log: log.WithName("db")}
	if c.DBUpdateURL != "" {
		dbo.ListingURL = c.DBUpdateURL
		dbo.HTTPClient = &http.Client{Transport: rc.Transport(), Timeout: 10 * time.Minute}
	}
	db, err := grype.OpenDB(c.DBDir, dbo)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", c.DBDir, err)
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
