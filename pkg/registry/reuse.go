package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	// maxPullers bounds the kept pullers (one per registry and credentials).
	maxPullers = 256
	// pullerTTL is how long a puller (its ping result and bearer token) is kept.
	pullerTTL = 10 * time.Minute
)

// pullers keeps one ggcr Puller per (registry, credentials). A Puller remembers,
// per repository, the registry's ping answer and its bearer token, so verifying
// a second digest costs no ping and no token request.
type pullers struct {
	mu sync.Mutex
	m  map[string]pullerEntry
}

type pullerEntry struct {
	p       *remote.Puller
	expires time.Time
}

// RemoteOptionsFor is RemoteOptions for calls about ref: it also reuses the
// connection state (ping answer, bearer token) of earlier calls to ref's
// repository with the same credentials. Credentials are told apart by a hash of what kc
// resolves for the registry; a puller is never shared between different ones.
func (c *Client) RemoteOptionsFor(ctx context.Context, ref name.Reference, kc authn.Keychain) []remote.Option {
	opts := c.RemoteOptions(ctx, kc)
	// Credentials are resolved for the repository: the Kubernetes keychain picks
	// a pull secret by the longest matching registry/path prefix.
	key, ok := credentialKey(ref.Context(), kc)
	if !ok {
		return opts
	}
	p := c.pullers.get(key+" "+ref.Context().Name(), func() (*remote.Puller, error) {
		// The puller's options carry no request context: each call passes its own.
		return remote.NewPuller(c.RemoteOptions(context.Background(), kc)...)
	})
	if p == nil {
		return opts
	}
	return append(opts, remote.Reuse(p))
}

// credentialKey hashes what kc resolves for res; false when it cannot tell.
func credentialKey(res authn.Resource, kc authn.Keychain) (string, bool) {
	if kc == nil {
		return "anonymous", true
	}
	a, err := kc.Resolve(res)
	if err != nil {
		return "", false
	}
	cfg, err := a.Authorization()
	if err != nil {
		return "", false
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", false
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), true
}

func (ps *pullers) get(key string, make func() (*remote.Puller, error)) *remote.Puller {
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if e, ok := ps.m[key]; ok && now.Before(e.expires) {
		return e.p
	}
	p, err := make()
	if err != nil {
		return nil
	}
	if ps.m == nil {
		ps.m = map[string]pullerEntry{}
	}
	if len(ps.m) >= maxPullers {
		for k, e := range ps.m {
			if !now.Before(e.expires) || len(ps.m) >= maxPullers {
				delete(ps.m, k)
			}
		}
	}
	ps.m[key] = pullerEntry{p: p, expires: now.Add(pullerTTL)}
	return p
}
