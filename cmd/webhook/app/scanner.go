//go:build !noscanner

package app

import (
	"context"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-dev/bulwark/internal/scanner"
)

// embeddedScanner says whether this build can run the scanner inside the webhook
// (--scanner-db-dir). Release images are built with -tags noscanner: grype and
// syft then stay out of the binary and the webhook's memory (docs/benchmarks.md).
const embeddedScanner = true

func startEmbeddedScanner(ctx context.Context, cfg *Config, reg prometheus.Registerer, log logr.Logger) (<-chan error, error) {
	return scanner.Start(ctx, cfg.Kube, cfg.Policy, cfg.RegistryCAs, cfg.Scanner, reg, log)
}
