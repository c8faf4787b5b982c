package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

func TestFailure(t *testing.T) {
	plainHTTP := &NotAllowedError{Host: "127.0.0.1:5000", Reason: reasonPlainHTTP}
	for name, tc := range map[string]struct {
		err    error
		want   verify.Outcome
		detail string
	}{
		"not on the allow-list": {&NotAllowedError{Host: "evil.example", Reason: reasonNotListed}, verify.NotAllowed, "registry not allowed: evil.example"},
		"plain HTTP alone":      {plainHTTP, verify.Unavailable, "unavailable over HTTPS (plain HTTP not allowed"},
		// go-containerregistry's ping tries HTTPS and HTTP for loopback registries.
		"HTTPS timed out, HTTP refused": {errors.Join(fmt.Errorf("ping: %w", context.DeadlineExceeded), plainHTTP), verify.Unavailable, "time ran out"},
		"HTTPS 503, HTTP refused":       {errors.Join(&transport.Error{StatusCode: http.StatusServiceUnavailable}, plainHTTP), verify.Unavailable, "HTTP 503"},
		"credentials refused":           {&transport.Error{StatusCode: http.StatusUnauthorized}, verify.Unauthorized, "refused the credentials (HTTP 401)"},
		"rate limited":                  {&transport.Error{StatusCode: http.StatusTooManyRequests}, verify.Unavailable, "HTTP 429"},
		"anything else":                 {errors.New("connection reset"), verify.Unavailable, "unavailable: connection reset"},
	} {
		t.Run(name, func(t *testing.T) {
			got, detail := Failure("r.example", "the manifest", tc.err)
			if got != tc.want {
				t.Errorf("outcome = %s, want %s (%s)", got, tc.want, detail)
			}
			if !strings.Contains(detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", detail, tc.detail)
			}
		})
	}
}
