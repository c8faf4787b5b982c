// Package wire builds the parts the webhook, the scanner and the CLI share from
// their configuration: the policy file, registry roots and registry access under
// the policy's egress rules, and the scanner's configuration (internal/scanner
// starts it). Only cmd/ uses it; it links no scanner code.
package wire

import (
	"crypto/x509"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
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
