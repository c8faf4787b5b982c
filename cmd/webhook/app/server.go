package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bulwark-dev/bulwark/pkg/admission"
	"github.com/bulwark-dev/bulwark/pkg/kube"
	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// NewCommand returns the webhook's root command.
func NewCommand() *cobra.Command {
	o := NewOptions()
	cmd := &cobra.Command{
		Use:           "webhook",
		Short:         "bulwark's admission webhook: pins images by digest and hardens pods",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.Config()
			if err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// main prints the error Run returns.
			return Run(logr.NewContext(ctx, newLogger(cfg.LogLevel)), cfg, nil)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func newLogger(level int) logr.Logger {
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.Level(-level)})
	l := logr.FromSlogHandler(h)
	logf.SetLogger(l)
	return l
}

// Run serves admission, health and metrics over TLS until ctx is done, then shuts
// down gracefully. If ready is not nil it receives the listening address once the
// server accepts connections.
func Run(ctx context.Context, cfg *Config, ready chan<- net.Addr) error {
	log := logr.FromContextOrDiscard(ctx)

	reg := prometheus.NewRegistry()
	serving, err := startServingCerts(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	defer serving.stop()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := admission.NewMetrics(reg)
	var current atomic.Pointer[policy.Policy]
	current.Store(cfg.Policy)
	var isReady atomic.Bool

	opts := admission.Options{Policy: current.Load, Metrics: metrics, GrantKey: cfg.GrantKey}
	synced := func() bool { return true }
	var client kubernetes.Interface
	if cfg.Kube != nil {
		client, err = kubernetes.NewForConfig(cfg.Kube)
		if err != nil {
			return fmt.Errorf("API client: %w", err)
		}
		factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
		lookup := kube.NewLookup(client, factory)
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		events := kube.NewEventQueue(client, cfg.EventQueueSize, metrics.EventsDropped)
		go events.Run(ctx)
		opts.Authorizer, opts.Lookup, opts.Events = kube.NewAuthorizer(client), lookup, events
		synced = lookup.HasSynced
	} else {
		log.Info("No API server access: exemptions that need a permission check are refused, namespace exemptions are not read, no Events are recorded")
	}
	if err := withTrust(&opts, cfg, client, reg); err != nil {
		return err
	}
	var scannerDone <-chan error // nil: no embedded scanner
	if cfg.Policy.Checks.Vulnerabilities.Enabled || cfg.Scanner.DBDir != "" {
		if cfg.Kube == nil {
			return errors.New("the vulnerabilities check and the scanner need API access (--kubeconfig or in-cluster)")
		}
		scans, err := kube.NewScans(cfg.Kube)
		if err != nil {
			return err
		}
		go func() {
			if err := scans.Start(ctx); err != nil {
				log.Error(err, "Image scan cache stopped")
			}
		}()
		opts.Scans = scans
		lookupSynced := synced
		synced = func() bool { return lookupSynced() && scans.HasSynced(ctx) }
		if cfg.Scanner.DBDir != "" {
			scanCtx, stopScanner := context.WithCancel(ctx)
			done, err := startEmbeddedScanner(scanCtx, cfg, reg, log.WithName("scanner"))
			if err != nil {
				stopScanner()
				return fmt.Errorf("embedded scanner: %w", err)
			}
			defer func() { stopScanner(); <-done }()
			scannerDone = done
		}
	}
	if len(cfg.GrantKey) == 0 {
		log.Info("No grant key: pods made by controllers cannot inherit exemptions")
	}
	mutate, validate := opts, opts
	mutate.Stage, validate.Stage = policy.StageMutate, policy.StageValidate

	var mutateHandler, validateHandler http.Handler = admission.NewHandler(mutate).Webhook(), admission.NewHandler(validate).Webhook()
	if cfg.ClientCAs != nil {
		mutateHandler, validateHandler = requireClientCert(mutateHandler, cfg.ClientCertNames), requireClientCert(validateHandler, cfg.ClientCertNames)
	} else {
		log.Info("No --client-ca-file: any client that reaches the port can ask for decisions; restrict it with a NetworkPolicy")
	}
	mux := http.NewServeMux()
	mux.Handle("/mutate", mutateHandler)
	mux.Handle("/validate", validateHandler)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		// Ready only with a policy loaded, the namespace cache filled, a serving
		// certificate, and while not shutting down.
		if !isReady.Load() || current.Load() == nil || !synced() || !serving.ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})

	srv := &http.Server{
		Handler:           serving.closeStale(mux),
		ConnContext:       serving.connContext,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    1 << 16,
		TLSConfig:         TLSConfig(serving.getCertificate, cfg.ClientCAs),
		// HTTP/2 is off (CVE-2023-44487 and CVE-2023-39325 class attacks); the API
		// server speaks HTTP/1.1 to webhooks.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     serving.serverErrorLog(log),
		// In-flight requests finish on shutdown with their own deadlines: a
		// cancelled context would deny them ("scan in progress").
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln, err := net.Listen("tcp", cfg.BindAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.BindAddress, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	isReady.Store(true)
	log.Info("Serving", "address", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr()
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case err := <-scannerDone:
		// Without its scanner the webhook would deny every new image as
		// "scan in progress": stop, so the failure is seen and restarted.
		return fmt.Errorf("embedded scanner stopped: %w", err)
	case <-ctx.Done():
	}
	isReady.Store(false)
	log.Info("Shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
