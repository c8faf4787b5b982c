package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"

	"github.com/bulwark-dev/bulwark/internal/certrotate"
)

// servingCerts is where the serving certificate comes from: the files (reloaded
// when they change) or, self-managed, the Secret every replica watches.
type servingCerts struct {
	source func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ready reports whether a certificate is loaded.
	ready func() bool
	// stop ends the background work and waits for it.
	stop            func()
	handshakeErrors prometheus.Counter
	staleClosed     prometheus.Counter
}

// startServingCerts starts the certificate source cfg names; stop it when done.
func startServingCerts(ctx context.Context, cfg *Config, reg prometheus.Registerer, log logr.Logger) (*servingCerts, error) {
	s := &servingCerts{
		handshakeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_tls_handshake_errors_total",
			Help: "TLS handshakes of the server that failed, as net/http logs them: a client refusing the certificate, no certificate to serve, a client hanging up."}),
		staleClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_tls_stale_connections_closed_total",
			Help: "Connections closed after a request because their certificate has since been replaced; the client's next handshake gets the new one."}),
	}
	if err := errors.Join(reg.Register(s.handshakeErrors), reg.Register(s.staleClosed)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	s.stop = func() { cancel(); wg.Wait() }
	if cfg.SelfManaged != nil {
		if cfg.Kube == nil {
			cancel()
			return nil, errors.New("self-managed certificates need API access (--kubeconfig or in-cluster)")
		}
		m, err := certrotate.New(cfg.Kube, *cfg.SelfManaged, reg, log.WithName("certificates"))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("self-managed certificates: %w", err)
		}
		wg.Go(func() { m.Run(ctx) })
		s.source, s.ready = m.GetCertificate, m.HasCertificate
		return s, nil
	}
	watcher, err := certwatcher.New(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("load serving certificate: %w", err)
	}
	watcher = watcher.WithWatchInterval(cfg.CertReload)
	wg.Go(func() {
		if err := watcher.Start(ctx); err != nil {
			log.Error(err, "Certificate watcher stopped")
		}
	})
	s.source, s.ready = watcher.GetCertificate, func() bool { return true }
	return s, nil
}

// connCertKey keys, in a connection's context, the certificate served on it.
type connCertKey struct{}

// connContext gives each connection a cell for the certificate its handshake
// served (http.Server.ConnContext; the handshake runs in this context).
func (s *servingCerts) connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connCertKey{}, new(atomic.Pointer[tls.Certificate]))
}

// getCertificate serves the source's certificate and notes it on the connection.
func (s *servingCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := s.source(hello)
	if cell, ok := hello.Context().Value(connCertKey{}).(*atomic.Pointer[tls.Certificate]); ok && err == nil {
		cell.Store(c)
	}
	return c, err
}

// closeStale answers with "Connection: close" on a connection whose certificate
// has been replaced since its handshake. The API server keeps connections to
// webhooks open; without this it would verify a new certificate only when an
// old connection ends, and a certificate it refuses would show long after the
// rotation instead of at once.
func (s *servingCerts) closeStale(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cell, ok := r.Context().Value(connCertKey{}).(*atomic.Pointer[tls.Certificate]); ok {
			if used := cell.Load(); used != nil {
				if cur, err := s.source(nil); err == nil && cur != used {
					w.Header().Set("Connection", "close")
					s.staleClosed.Inc()
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serverErrorLog is the HTTP server's error log: its lines at debug level, and
// failed TLS handshakes counted (net/http reports them only there).
func (s *servingCerts) serverErrorLog(log logr.Logger) *stdlog.Logger {
	next := slog.NewLogLogger(logr.ToSlogHandler(log), slog.LevelDebug)
	return stdlog.New(handshakeCounter{next: next.Writer(), errors: s.handshakeErrors}, "", 0)
}

type handshakeCounter struct {
	next   io.Writer
	errors prometheus.Counter
}

func (h handshakeCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("http: TLS handshake error")) {
		h.errors.Inc()
	}
	return h.next.Write(p)
}
