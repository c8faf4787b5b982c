// Package app assembles bulwark's webhook server: flags → Options → Validate →
// Config → Run. Only this layer wires concrete implementations.
package app

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulwark-dev/bulwark/certs"
	"github.com/bulwark-dev/bulwark/internal/certrotate"
	"github.com/bulwark-dev/bulwark/internal/wire"
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
	DefaultEventQueueSize  = 1000
	DefaultNamespace       = "bulwark-system"

	// Self-managed certificates (--cert-secret).
	DefaultCertService       = "bulwark-webhook"
	DefaultCertValidity      = 90 * 24 * time.Hour
	DefaultCAValidity        = 10 * 365 * 24 * time.Hour
	DefaultWebhookConfigName = "bulwark"

	// minGrantKeyBytes is the shortest accepted HMAC key for exemption grants.
	minGrantKeyBytes = 32
	// minCertValidity leaves the third of a serving certificate's lifetime in
	// which it is renewed well above certrotate.DefaultPropagation.
	minCertValidity = 10 * time.Minute
)

// errNoEmbeddedScanner refuses --scanner-db-dir in a build without the scanner.
var errNoEmbeddedScanner = errors.New("this webhook was built without the embedded scanner (-tags noscanner, as the release image is): run the scanner Deployment (cmd/scanner), or use a build without that tag")

// Options are the webhook's command-line flags.
type Options struct {
	BindAddress     string
	PolicyFile      string
	CertFile        string
	KeyFile         string
	CertReload      time.Duration
	ShutdownTimeout time.Duration
	LogLevel        int
	Kubeconfig      string
	GrantKeyFile    string
	EventQueueSize  int
	ClientCAFile    string
	ClientCertNames []string
	RegistryCAFile  string
	Namespace       string
	Scanner         ScannerOptions
	Certs           CertOptions
}

// CertOptions are the flags of self-managed certificates.
type CertOptions struct {
	Secret            string
	Service           string
	Hosts             []string
	CertValidity      time.Duration
	CAValidity        time.Duration
	WebhookConfigName string
}

// ScannerOptions are the flags of the embedded scanner.
type ScannerOptions struct {
	DBDir            string
	DBUpdateURL      string
	DBUpdateInterval time.Duration
	Concurrency      int
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
		EventQueueSize:  DefaultEventQueueSize,
		Namespace:       cmp.Or(os.Getenv("POD_NAMESPACE"), DefaultNamespace),
		Certs: CertOptions{Service: DefaultCertService, CertValidity: DefaultCertValidity,
			CAValidity: DefaultCAValidity, WebhookConfigName: DefaultWebhookConfigName},
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
	fs.IntVar(&o.LogLevel, "v", o.LogLevel, "log verbosity")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig for bulwark's own API access (access reviews, namespaces, Events); empty: in-cluster configuration, or none outside a cluster")
	fs.StringVar(&o.GrantKeyFile, "grant-key-file", o.GrantKeyFile, "file holding the HMAC key (at least 32 bytes) that signs exemption grants, e.g. mounted from a Secret; without it, pods made by controllers cannot inherit exemptions")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "CA bundle (PEM) that verifies the API server's client certificate; when set, /mutate and /validate refuse any caller without one (configure kube-apiserver's AdmissionConfiguration kubeConfigFile to present it)")
	fs.StringSliceVar(&o.ClientCertNames, "client-cert-name", o.ClientCertNames, "with --client-ca-file: accept only client certificates with one of these common names or DNS names (repeatable); needed when the CA signs other clients too")
	fs.StringVar(&o.RegistryCAFile, "registry-ca-file", o.RegistryCAFile, "CA bundle (PEM) trusted for registries, in addition to the system roots")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "bulwark's own namespace, where Secrets named by the trust policy's secretRef keys are read (default $POD_NAMESPACE, else bulwark-system)")
	fs.StringVar(&o.Scanner.DBDir, "scanner-db-dir", o.Scanner.DBDir, "run the image scanner inside the webhook (small clusters, the demo) with the grype v6 database in this directory; empty: scans are left to the scanner Deployment")
	fs.StringVar(&o.Scanner.DBUpdateURL, "scanner-db-update-url", o.Scanner.DBUpdateURL, "with --scanner-db-dir: grype database listing URL checked for newer databases (its host must be on the policy's registry.allow); empty: no updates")
	fs.DurationVar(&o.Scanner.DBUpdateInterval, "scanner-db-update-interval", 6*time.Hour, "how often --scanner-db-update-url is checked")
	fs.IntVar(&o.Scanner.Concurrency, "scanner-concurrency", 1, "scans the embedded scanner runs at once")
	fs.IntVar(&o.EventQueueSize, "event-queue-size", o.EventQueueSize, "Events waiting to be sent; more are dropped and counted in bulwark_events_dropped_total")
	fs.StringVar(&o.Certs.Secret, "cert-secret", o.Certs.Secret, "self-managed certificates: the Secret in --namespace holding ca.crt, ca.key, tls.crt and tls.key, created and rotated by the webhook (one replica, elected with the Lease "+certrotate.DefaultLeaseName+"), which also sets the caBundle of its webhook configurations; --tls-cert-file and --tls-key-file are then not read (docs/certificates.md)")
	fs.StringVar(&o.Certs.Service, "cert-service", o.Certs.Service, "with --cert-secret: the Service the API server calls; the serving certificate is for NAME.NAMESPACE.svc, NAME.NAMESPACE.svc.cluster.local, NAME.NAMESPACE and NAME")
	fs.StringSliceVar(&o.Certs.Hosts, "cert-hosts", o.Certs.Hosts, "with --cert-secret: more names of the serving certificate, DNS names or IP addresses (repeatable)")
	fs.DurationVar(&o.Certs.CertValidity, "cert-validity", o.Certs.CertValidity, "with --cert-secret: lifetime of the serving certificate; renewed when a third of it remains")
	fs.DurationVar(&o.Certs.CAValidity, "ca-validity", o.Certs.CAValidity, "with --cert-secret: lifetime of the CA; renewed when a third of it remains, the old CA staying trusted until the certificate it signed is replaced")
	fs.StringVar(&o.Certs.WebhookConfigName, "webhook-config-name", o.Certs.WebhookConfigName, "with --cert-secret: the MutatingWebhookConfiguration and ValidatingWebhookConfiguration whose webhooks get the CA bundle")
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
	// Kube is bulwark's own API access; nil: exemptions that need a permission
	// check are refused and no Events are recorded.
	Kube           *rest.Config
	GrantKey       []byte
	EventQueueSize int
	// ClientCAs verify the API server's client certificate; nil: none required.
	ClientCAs *x509.CertPool
	// ClientCertNames, when set, are the names such a certificate must carry.
	ClientCertNames []string
	// RegistryCAs verify registries' certificates; nil: the system roots.
	RegistryCAs *x509.CertPool
	// Namespace is bulwark's own namespace.
	Namespace string
	// Scanner, when DBDir is set, runs a scan worker in the webhook process.
	Scanner wire.ScannerConfig
	// SelfManaged, when set, makes the serving certificate come from a Secret the
	// webhook maintains itself; CertFile and KeyFile are then not used. It needs
	// Kube.
	SelfManaged *certrotate.Config
}

// Config validates o, loads the policy and returns the configuration. Every error
// names the flag or policy field at fault.
func (o *Options) Config() (*Config, error) {
	var errs []error
	if _, _, err := net.SplitHostPort(o.BindAddress); err != nil {
		errs = append(errs, fmt.Errorf("--bind-address: %w", err))
	}
	selfManaged, certErrs := o.Certs.config(o.Namespace)
	errs = append(errs, certErrs...)
	for flag, path := range map[string]string{"--tls-cert-file": o.CertFile, "--tls-key-file": o.KeyFile} {
		if selfManaged != nil {
			break // not read
		}
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
	p, err := wire.LoadPolicy(o.PolicyFile)
	if err != nil {
		errs = append(errs, fmt.Errorf("--policy %s: %w", o.PolicyFile, err))
	}
	if o.EventQueueSize < 1 {
		errs = append(errs, fmt.Errorf("--event-queue-size: must be at least 1, got %d", o.EventQueueSize))
	}
	kube, err := kubeConfig(o.Kubeconfig)
	if err != nil {
		errs = append(errs, fmt.Errorf("--kubeconfig: %w", err))
	} else if kube == nil && selfManaged != nil {
		errs = append(errs, errors.New("--cert-secret: self-managed certificates need API access (--kubeconfig or in-cluster)"))
	}
	var key []byte
	if o.GrantKeyFile != "" {
		key, err = os.ReadFile(o.GrantKeyFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--grant-key-file: %w", err))
		case len(key) < minGrantKeyBytes:
			errs = append(errs, fmt.Errorf("--grant-key-file: key is %d bytes, want at least %d", len(key), minGrantKeyBytes))
		}
	}
	var clientCAs *x509.CertPool
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		clientCAs = x509.NewCertPool()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--client-ca-file: %w", err))
		case !clientCAs.AppendCertsFromPEM(pem):
			errs = append(errs, fmt.Errorf("--client-ca-file: no PEM certificate in %s", o.ClientCAFile))
		}
	}
	registryCAs, err := wire.RegistryRoots(o.RegistryCAFile)
	if err != nil {
		errs = append(errs, fmt.Errorf("--registry-ca-file: %w", err))
	}
	if o.Scanner.DBDir != "" {
		if !embeddedScanner {
			errs = append(errs, fmt.Errorf("--scanner-db-dir: %w", errNoEmbeddedScanner))
		} else if _, err := os.Stat(o.Scanner.DBDir); err != nil {
			errs = append(errs, fmt.Errorf("--scanner-db-dir: %w", err))
		}
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("--namespace: must not be empty"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(o.ClientCertNames) > 0 && o.ClientCAFile == "" {
		return nil, errors.New("--client-cert-name: needs --client-ca-file")
	}
	return &Config{
		ClientCAs:       clientCAs,
		ClientCertNames: o.ClientCertNames,
		RegistryCAs:     registryCAs,
		Scanner: wire.ScannerConfig{DBDir: o.Scanner.DBDir, DBUpdateURL: o.Scanner.DBUpdateURL,
			DBUpdateInterval: o.Scanner.DBUpdateInterval, Concurrency: o.Scanner.Concurrency},
		SelfManaged:     selfManaged,
		Namespace:       o.Namespace,
		BindAddress:     o.BindAddress,
		CertFile:        o.CertFile,
		KeyFile:         o.KeyFile,
		CertReload:      o.CertReload,
		ShutdownTimeout: o.ShutdownTimeout,
		LogLevel:        o.LogLevel,
		Policy:          p,
		Kube:            kube,
		GrantKey:        key,
		EventQueueSize:  o.EventQueueSize,
	}, nil
}

// kubeConfig loads path, or the in-cluster configuration when path is empty; outside
// a cluster with no path it returns nil.
func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, nil
	}
	return cfg, err
}

// config returns the self-managed certificates' configuration, or nil without
// --cert-secret.
func (o *CertOptions) config(namespace string) (*certrotate.Config, []error) {
	if o.Secret == "" {
		return nil, nil
	}
	var errs []error
	for _, n := range []struct{ flag, name string }{{"--cert-secret", o.Secret}, {"--webhook-config-name", o.WebhookConfigName}} {
		for _, msg := range validation.IsDNS1123Subdomain(n.name) {
			errs = append(errs, fmt.Errorf("%s %q: %s", n.flag, n.name, msg))
		}
	}
	for _, msg := range validation.IsDNS1123Label(o.Service) {
		errs = append(errs, fmt.Errorf("--cert-service %q: %s", o.Service, msg))
	}
	for _, h := range o.Hosts {
		if net.ParseIP(h) == nil {
			for _, msg := range validation.IsDNS1123Subdomain(h) {
				errs = append(errs, fmt.Errorf("--cert-hosts %q: neither an IP address nor a DNS name: %s", h, msg))
			}
		}
	}
	if o.CertValidity < minCertValidity {
		errs = append(errs, fmt.Errorf("--cert-validity: must be at least %s, got %s", minCertValidity, o.CertValidity))
	}
	if o.CAValidity <= o.CertValidity {
		errs = append(errs, fmt.Errorf("--ca-validity: must be longer than --cert-validity (%s), got %s", o.CertValidity, o.CAValidity))
	}
	dnsNames, ips := certs.SplitHosts(o.Hosts)
	return &certrotate.Config{
		Namespace:         namespace,
		SecretName:        o.Secret,
		WebhookConfigName: o.WebhookConfigName,
		Identity:          certrotate.NewIdentity(),
		Spec: certs.Spec{
			CommonName:   o.Service,
			DNSNames:     append(certs.ServiceNames(o.Service, namespace), dnsNames...),
			IPs:          ips,
			CertValidity: o.CertValidity,
			CAValidity:   o.CAValidity,
			Propagation:  certrotate.DefaultPropagation,
		},
	}, errs
}
