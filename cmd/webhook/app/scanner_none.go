//go:build noscanner

package app

import (
	"context"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// embeddedScanner is false in this build (-tags noscanner, the release image):
// scans are left to the scanner Deployment.
const embeddedScanner = false

func startEmbeddedScanner(context.Context, *Config, prometheus.Registerer, logr.Logger) (<-chan error, error) {
	return nil, errNoEmbeddedScanner
}
