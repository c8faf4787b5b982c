package oci

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/cosign/v3/pkg/oci/mutate"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
)

// Rekor stands in for a Rekor transparency log: its key signs the
// SignedEntryTimestamp (SET) of a hashedrekord entry, which cosign verifies
// offline against the log's public key.
type Rekor struct {
	key *ecdsa.PrivateKey
	id  string // the log ID: hex SHA-256 of the public key
	// PublicPEM is the log's public key, as a trusted-root file lists it after
	// the certificates.
	PublicPEM []byte
}

// NewRekor creates a log with a new ECDSA P-256 key.
func NewRekor(t T) *Rekor {
	t.Helper()
	key := newECDSA(t)
	id, err := cosign.GetTransparencyLogID(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Rekor{key: key, id: id, PublicPEM: publicPEM(t, key)}
}

// Log returns sig with the bundle Rekor answers to its upload, as if the entry
// had been integrated at `at` (a verifier wants that within the certificate's
// validity). sig must carry a certificate: it is a keyless signature.
func (l *Rekor) Log(t T, sig oci.Signature, at time.Time) oci.Signature {
	t.Helper()
	payload, err := sig.Payload()
	if err != nil {
		t.Fatal(err)
	}
	ann, err := sig.Annotations()
	if err != nil {
		t.Fatal(err)
	}
	certPEM := ann[static.CertificateAnnotationKey]
	if certPEM == "" {
		t.Fatal("rekor: the signature carries no certificate")
	}
	sum := sha256.Sum256(payload)
	body, err := json.Marshal(map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data": map[string]any{
				"hash": map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(sum[:])},
			},
			"signature": map[string]any{
				"content":   ann[static.SignatureAnnotationKey], // base64, as Rekor wants it
				"publicKey": map[string]any{"content": base64.StdEncoding.EncodeToString([]byte(certPEM))},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rp := bundle.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(body),
		IntegratedTime: at.Unix(),
		LogIndex:       42,
		LogID:          l.id,
	}
	// The SET is the log's signature over the canonical JSON of the payload.
	js, err := json.Marshal(rp)
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := jsoncanonicalizer.Transform(js)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(canonical)
	set, err := ecdsa.SignASN1(rand.Reader, l.key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	logged, err := mutate.Signature(sig, mutate.WithBundle(&bundle.RekorBundle{SignedEntryTimestamp: set, Payload: rp}))
	if err != nil {
		t.Fatal(err)
	}
	return logged
}
