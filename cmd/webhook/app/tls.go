package app

import (
	"crypto/tls"
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
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: getCert,
	}
}
