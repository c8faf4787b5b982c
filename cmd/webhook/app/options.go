// Package app assembles bulwark's webhook server: flags → Options → Validate →
// Config → Run. Only this layer wires concrete implementations.
package app

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// Defaults of the webhook's flags.
const (
	DefaultBindAddress     = ":8443"
	DefaultPolicyFile      = "/etc/bulwark/policy.yaml"
	DefaultCertFile        = "/etc/bulwark/tls/tls.crt"
	DefaultKeyFile         = "/etc/bulwark/tls/tls.key"
	DefaultCertReload      = 10 * time.Second
	DefaultShutdownTimeout = 25 * time.Second
)

// Options are the webhook's command-line flags.
type Options struct {
	BindAddress     string
	PolicyFile      string
	CertFile        string
	KeyFile         string
	CertReload      time.Duration
	ShutdownTimeout time.Duration
	LogLevel        int
}

// NewOptions returns Options holding the defaults.
func NewOptions() *Options {
	return &Options{
		BindAddress:     DefaultBindAddress,
		PolicyFile:      DefaultPolicyFile,
		CertFile:        DefaultCertFile,
		KeyFile:         DefaultKeyFile,
		CertReload:      DefaultCertReload,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
}

// AddFlags binds o to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "host:port the TLS server listens on (admission, health and metrics)")
	fs.StringVar(&o.PolicyFile, "policy", o.PolicyFile, "path of the policy file (YAML, kind Policy)")
	fs.StringVar(&o.CertFile, "tls-cert-file", o.CertFile, "serving certificate (PEM); reloaded when it changes on disk")
	fs.StringVar(&o.KeyFile, "tls-key-file", o.KeyFile, "serving key (PEM); reloaded when it changes on disk")
	fs.DurationVar(&o.CertReload, "cert-reload-interval", o.CertReload, "how often the certificate files are re-read, besides file-change notifications")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long in-flight requests may take to finish after SIGTERM")
	fs.IntVar(&o.LogLevel, "v", o.LogLevel, "log verbosity; 1 also logs admitted requests")
}

// Config is validated configuration, ready for Run.
type Config struct {
	BindAddress     string
	CertFile        string
	KeyFile         string
	CertReload      time.Duration
	ShutdownTimeout time.Duration
	LogLevel        int
	Policy          *policy.Policy
}

// Config validates o, loads the policy and returns the configuration. Every error
// names the flag or policy field at fault.
func (o *Options) Config() (*Config, error) {
	var errs []error
	if _, _, err := net.SplitHostPort(o.BindAddress); err != nil {
		errs = append(errs, fmt.Errorf("--bind-address: %w", err))
	}
	for flag, path := range map[string]string{"--tls-cert-file": o.CertFile, "--tls-key-file": o.KeyFile} {
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	if o.CertReload <= 0 {
		errs = append(errs, fmt.Errorf("--cert-reload-interval: must be positive, got %s", o.CertReload))
	}
	if o.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout: must not be negative, got %s", o.ShutdownTimeout))
	}
	p, err := loadPolicy(o.PolicyFile)
	if err != nil {
		errs = append(errs, fmt.Errorf("--policy %s: %w", o.PolicyFile, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Config{
		BindAddress:     o.BindAddress,
		CertFile:        o.CertFile,
		KeyFile:         o.KeyFile,
		CertReload:      o.CertReload,
		ShutdownTimeout: o.ShutdownTimeout,
		LogLevel:        o.LogLevel,
		Policy:          p,
	}, nil
}

func loadPolicy(path string) (*policy.Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte over the limit is enough for Parse to report the size.
	data, err := io.ReadAll(io.LimitReader(f, policy.MaxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	return policy.Parse(data)
}
