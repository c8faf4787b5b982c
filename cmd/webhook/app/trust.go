package app

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-dev/bulwark/internal/wire"
	"github.com/bulwark-dev/bulwark/pkg/admission"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/verify"
	"github.com/bulwark-dev/bulwark/pkg/verify/cosign"
)

// maxSignatureBlobBytes bounds each blob read while verifying (signature payloads).
const maxSignatureBlobBytes = 4 << 20

// withTrust adds registry access and signature verification to o: one registry
// client (the egress guard) shared by tag resolution and verification, pull
// secrets read through client (nil: anonymous), and a cache in front of cosign.
func withTrust(o *admission.Options, cfg *Config, client kubernetes.Interface, reg prometheus.Registerer) error {
	p := cfg.Policy
	ro := wire.RegistryOptions(p, cfg.RegistryCAs, reg)
	ro.MaxBlobBytes = maxSignatureBlobBytes
	rc, err := registry.New(ro)
	if err != nil {
		return fmt.Errorf("registry access: %w", err)
	}
	co := cosign.Options{RemoteOptions: rc.RemoteOptionsFor}
	if client != nil {
		co.SecretKey = secretKeyReader(client, cfg.Namespace)
		o.Keychains = registry.NewKeychains(client)
	}
	v, err := cosign.New(co)
	if err != nil {
		return fmt.Errorf("signature verifier: %w", err)
	}
	o.Verifier = verify.NewCache(v, verify.CacheOptions{TTL: p.Checks.Signature.CacheTTL.Duration, Metrics: reg})
	o.Inspector = verify.NewBaseCache(rc, 0, reg)
	o.Resolver = rc
	return nil
}

// secretKeyReader reads public keys from Secrets in bulwark's own namespace.
func secretKeyReader(client kubernetes.Interface, namespace string) func(ctx context.Context, ref verify.SecretRef) ([]byte, error) {
	return func(ctx context.Context, ref verify.SecretRef) ([]byte, error) {
		s, err := client.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("read key %q of Secret %s/%s: %w", ref.Key, namespace, ref.Name, err)
		}
		data, ok := s.Data[ref.Key]
		if !ok {
			return nil, fmt.Errorf("Secret %s/%s has no key %q", namespace, ref.Name, ref.Key)
		}
		return data, nil
	}
}

var _ admission.Resolver = (*registry.Client)(nil)
var _ admission.Keychains = (*registry.Keychains)(nil)
