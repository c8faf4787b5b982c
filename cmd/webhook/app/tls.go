package app

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"slices"
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
// verified against the client CA — and, when names is not empty, issued to one of
// names (common name or DNS SAN): only the API server may ask for decisions, since
// bulwark trusts the user a review names. A CA that also signs other clients'
// certificates needs names.
func requireClientCert(next http.Handler, names []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || !certNamed(r.TLS.VerifiedChains[0][0], names) {
			http.Error(w, "client certificate of the API server required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func certNamed(c *x509.Certificate, names []string) bool {
	if len(names) == 0 {
		return true
	}
	return slices.Contains(names, c.Subject.CommonName) || slices.ContainsFunc(c.DNSNames, func(n string) bool { return slices.Contains(names, n) })
}
