package registry

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// staticKeychain resolves every registry to one authenticator.
type staticKeychain struct{ authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return k.Authenticator, nil
}

func TestRemoteOptionsForReusesThePingPerCredentials(t *testing.T) {
	var pings atomic.Int32
	reg := newTestRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				pings.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback})
	a := reg.push(t, "team/app:a", authn.Anonymous)
	b := reg.push(t, "team/app:b", authn.Anonymous)
	get := func(digest string, kc authn.Keychain) {
		t.Helper()
		d, err := name.NewDigest(reg.host + "/team/app@" + digest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Get(d, c.RemoteOptionsFor(t.Context(), d, kc)...); err != nil {
			t.Fatal(err)
		}
	}
	pings.Store(0)
	get(a.String(), nil)
	get(b.String(), nil)
	if n := pings.Load(); n != 1 {
		t.Errorf("two anonymous reads of one repository pinged %d times, want 1", n)
	}
	alice := staticKeychain{&authn.Basic{Username: "alice", Password: "a"}}
	bob := staticKeychain{&authn.Basic{Username: "bob", Password: "b"}}
	get(a.String(), alice)
	get(b.String(), alice)
	get(a.String(), bob)
	if n := pings.Load(); n != 3 {
		t.Errorf("after reads as alice (twice) and bob: %d pings, want 3 (one per credentials)", n)
	}
}
