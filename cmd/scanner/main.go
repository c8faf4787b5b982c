// Command scanner runs bulwark's image scan worker: it claims pending ImageScans
// (any number of replicas share the work through the API server), scans each
// image with Grype under the policy's registry egress rules, and writes the
// findings to the ImageScan's status. The webhook can run the same worker
// inside its own process (--scanner-db-dir) on small clusters.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulwark-dev/bulwark/internal/scanner"
	"github.com/bulwark-dev/bulwark/internal/wire"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/worker"
)

func main() {
	var (
		kubeconfig, policyFile, caFile, metricsAddr string
		c                                           wire.ScannerConfig
	)
	fs := pflag.NewFlagSet("scanner", pflag.ExitOnError)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig; empty: in-cluster configuration")
	fs.StringVar(&policyFile, "policy", "/etc/bulwark/policy/policy.yaml", "bulwark's policy file (registry egress rules, scan thresholds)")
	fs.StringVar(&caFile, "registry-ca-file", "", "CA bundle (PEM) trusted for registries, besides the system roots")
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":9090", "address of /metrics and /healthz; empty: none")
	fs.StringVar(&c.DBDir, "db-dir", "/var/lib/bulwark/db", "directory holding the grype v6 database (vulnerability.db, import.json); when it holds none, the newest from --db-update-url is downloaded into it at start")
	fs.StringVar(&c.DBUpdateURL, "db-update-url", "", "grype database listing URL (grype's format; its host must be on the policy's registry.allow) checked for newer databases; empty: no downloads (air-gapped: put a database in --db-dir)")
	fs.DurationVar(&c.DBUpdateInterval, "db-update-interval", 6*time.Hour, "how often --db-update-url is checked")
	fs.IntVar(&c.Concurrency, "concurrency", worker.DefaultConcurrency, "scans run at once")
	// Per-scan limits: a scan past one fails "exceeds scan limits" and the image is
	// denied. Size the scanner's /tmp volume for concurrency × uncompressed bytes.
	fs.Int64Var(&c.Limits.MaxCompressedBytes, "max-compressed-bytes", scan.DefaultMaxCompressedBytes, "per scan: layer and config bytes the manifest may declare")
	fs.Int64Var(&c.Limits.MaxUncompressedBytes, "max-uncompressed-bytes", scan.DefaultMaxUncompressedBytes, "per scan: bytes of all layers once decompressed")
	fs.IntVar(&c.Limits.MaxFiles, "max-files", scan.DefaultMaxFiles, "per scan: files in all layers")
	fs.IntVar(&c.Limits.MaxLayers, "max-layers", scan.DefaultMaxLayers, "per scan: layers of the manifest")
	fs.DurationVar(&c.Limits.MaxDuration, "max-scan-duration", scan.DefaultMaxDuration, "per scan: wall time")
	fs.DurationVar(&c.ClaimTTL, "claim-ttl", worker.DefaultClaimTTL, "how long a claim on a scan holds without renewal")
	fs.StringVar(&c.ID, "id", "", "this worker's name in claims; default: host name and a random suffix")
	_ = fs.Parse(os.Args[1:])

	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, kubeconfig, policyFile, caFile, metricsAddr, c, log); err != nil {
		fmt.Fprintln(os.Stderr, "scanner:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, policyFile, caFile, metricsAddr string, c wire.ScannerConfig, log logr.Logger) error {
	p, err := wire.LoadPolicy(policyFile)
	if err != nil {
		return fmt.Errorf("--policy %s: %w", policyFile, err)
	}
	roots, err := wire.RegistryRoots(caFile)
	if err != nil {
		return fmt.Errorf("--registry-ca-file: %w", err)
	}
	var cfg *rest.Config
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("API access: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	done, err := scanner.Start(ctx, cfg, p, roots, c, reg, log)
	if err != nil {
		return err
	}
	if metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
		srv := &http.Server{Addr: metricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(err, "Metrics server stopped")
			}
		}()
		defer srv.Close()
	}
	return <-done
}
