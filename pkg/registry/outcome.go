package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// Failure classifies an error from talking to registry host while doing what
// (e.g. "the signatures of sha256:…"), for a user: refused by the egress guard
// (NotAllowed), credentials refused (Unauthorized), or anything else — an HTTP
// error status, a timeout, a dial error — Unavailable, which is transient and
// never cached. The detail never carries credentials: transport.Error holds none.
func Failure(host, what string, err error) (verify.Outcome, string) {
	var na *NotAllowedError
	if errors.As(err, &na) && na.Reason != reasonPlainHTTP {
		return verify.NotAllowed, na.Error()
	}

	// A timeout first: go-containerregistry may also have tried plain HTTP
	// against an HTTPS port and got a 400 it reports alongside.
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return verify.Unavailable, fmt.Sprintf("registry %s: time ran out reading %s", host, what)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
			return verify.Unauthorized, fmt.Sprintf("registry %s refused the credentials (HTTP %d) for %s", host, te.StatusCode, what)
		}
		return verify.Unavailable, fmt.Sprintf("registry %s answered HTTP %d for %s", host, te.StatusCode, what)
	}
	if na != nil {
		// go-containerregistry tries plain HTTP besides HTTPS for loopback and
		// private registries (the guard refuses it unless the registry is listed
		// as insecure): the registry could not be read over HTTPS, which is why.
		return verify.Unavailable, fmt.Sprintf("registry %s unavailable over HTTPS (%s): %v", host, reasonPlainHTTP, err)
	}
	return verify.Unavailable, fmt.Sprintf("registry %s unavailable: %v", host, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsRegistryError reports whether err is a failure to talk to a registry
// (refused by the egress guard, an HTTP error status, a transport or context
// error), as opposed to content that does not parse or verify.
func IsRegistryError(err error) bool {
	var na *NotAllowedError
	var te *transport.Error
	var ne net.Error
	return errors.As(err, &na) || errors.As(err, &te) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
