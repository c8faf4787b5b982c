package app

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"
)

const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 90 * time.Second
)

// TLSConfig is the serving TLS configuration: TLS 1.2 at least, HTTP/1.1 only, the
// certificate from getCert on every handshake (so a reloaded one is used at once).
// With clientCAs, a client certificate is verified when given; requireClientCert
// then makes the admission endpoints insist on one (probes and metrics need none).
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), clientCAs *x509.CertPool) *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: getCert,
	}
	if clientCAs != nil {
		cfg.ClientCAs = clientCAs
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg
}

// requireClientCert refuses requests that did not present a client certificate
// verified against the client CA: only the API server may ask for decisions, since
// bulwark trusts the user a review names.
func requireClientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "client certificate required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
