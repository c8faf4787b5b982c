package cosign

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/bulwark-dev/bulwark/pkg/verify"
	"github.com/bulwark-dev/bulwark/tests/oci"
)

func TestNewRequiresRemoteOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New(Options{}) succeeded, want an error")
	}
}

// TestSecretKeyRefresh: a key from a Secret is read again once
// SecretKeyRefresh has passed, and not before; a rotated key takes over then.
func TestSecretKeyRefresh(t *testing.T) {
	pems := []string{oci.NewKey(t).PublicPEM, oci.NewKey(t).PublicPEM}
	reads := 0
	v, err := New(Options{
		RemoteOptions: func(context.Context, name.Reference, authn.Keychain) []remote.Option { return nil },
		SecretKey: func(context.Context, verify.SecretRef) ([]byte, error) {
			reads++
			return []byte(pems[min(reads, len(pems))-1]), nil // rotated after the first read
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_000_000, 0)
	key := &verify.Key{SecretRef: &verify.SecretRef{Name: "keys", Key: "release.pub"}}
	first, err := parseKey([]byte(pems[0]))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := parseKey([]byte(pems[1]))
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		after     time.Duration
		wantReads int
		wantKey   string
	}{
		{0, 1, first.id},
		{SecretKeyRefresh - time.Second, 1, first.id},
		{SecretKeyRefresh, 2, rotated.id},
		{SecretKeyRefresh + time.Second, 2, rotated.id},
	}
	for _, s := range steps {
		v.now = func() time.Time { return start.Add(s.after) }
		kv, err := v.key(t.Context(), key)
		if err != nil {
			t.Fatalf("after %s: %v", s.after, err)
		}
		if reads != s.wantReads || kv.id != s.wantKey {
			t.Errorf("after %s: reads = %d, key rotated = %t; want reads = %d, key rotated = %t",
				s.after, reads, kv.id == rotated.id, s.wantReads, s.wantKey == rotated.id)
		}
	}
}

// TestParseTrustedRoot: what a trusted-root file may hold.
func TestParseTrustedRoot(t *testing.T) {
	ca := oci.NewFulcio(t)
	root, inter, rekorPEM := ca.RootPEM, ca.IntermediatePEM, oci.NewRekor(t).PublicPEM
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPEM, err := cryptoutils.MarshalPublicKeyToPEM(edPub)
	if err != nil {
		t.Fatal(err)
	}

	type shape struct {
		Intermediates bool
		RekorKeys     int
	}
	tests := map[string]struct {
		file    []byte
		want    shape
		wantErr string
	}{
		"root":                    {file: root, want: shape{}},
		"root and intermediate":   {file: slices.Concat(inter, root), want: shape{Intermediates: true}},
		"root and Rekor key":      {file: slices.Concat(root, rekorPEM), want: shape{RekorKeys: 1}},
		"intermediate only":       {file: inter, wantErr: "no root certificate (a self-signed CERTIFICATE block)"},
		"empty":                   {file: nil, wantErr: "no root certificate (a self-signed CERTIFICATE block)"},
		"ed25519 Rekor key":       {file: slices.Concat(root, edPEM), wantErr: "rekor public key is ed25519.PublicKey, not ECDSA"},
		"private key by accident": {file: slices.Concat(root, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})), wantErr: `unexpected PEM block "EC PRIVATE KEY"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := parseTrustedRoot(tc.file)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := shape{Intermediates: r.intermediates != nil}
			if r.rekor != nil {
				got.RekorKeys = len(r.rekor.Keys)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("trusted root (-want +got):\n%s", diff)
			}
		})
	}
}
