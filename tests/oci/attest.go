package oci

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign/attestation"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/cosign/v3/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/cosign/v3/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// Predicate types of common attestations.
const (
	SLSAProvenanceV1 = "https://slsa.dev/provenance/v1"
	SPDXDocument     = "https://spdx.dev/Document"
)

// Attest makes an attestation of d with k and attaches it to d's attestation
// tag in the registry, as `cosign attest --key --type predicateType` does
// (without a transparency log entry). predicateType is a URI; predicate is
// the predicate's JSON object.
func (r *Registry) Attest(t T, d name.Digest, k *Key, predicateType string, predicate []byte) {
	t.Helper()
	r.AttachAttestation(t, d, k.Attestation(t, d, predicateType, predicate))
}

// AttestKeyless attests d as `cosign attest --type predicateType` does keyless:
// a fresh key and a 10-minute certificate from f for issuer and subject, as
// SignKeyless does.
func (r *Registry) AttestKeyless(t T, d name.Digest, f *Fulcio, issuer, subject, predicateType string, predicate []byte) {
	t.Helper()
	priv, chain := f.Issue(t, issuer, subject)
	r.AttachAttestation(t, d, Attestation(t, d, priv, chain, predicateType, predicate))
}

// Attestation returns k's attestation of d, attached nowhere yet: attached to
// another image, it is a copied attestation.
func (k *Key) Attestation(t T, d name.Digest, predicateType string, predicate []byte) oci.Signature {
	t.Helper()
	return Attestation(t, d, k.priv, nil, predicateType, predicate)
}

// Attestation makes the attestation of d with priv as `cosign attest` does: an
// in-toto statement of predicateType about d, built by cosign's statement
// generator, in a DSSE envelope signed by priv; certChain as for Signature.
func Attestation(t T, d name.Digest, priv *ecdsa.PrivateKey, certChain [][]byte, predicateType string, predicate []byte) oci.Signature {
	t.Helper()
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	st, err := attestation.GenerateStatement(attestation.GenerateOpts{
		Predicate: bytes.NewReader(predicate),
		Type:      predicateType,
		Digest:    h.Hex,
		Repo:      d.Context().String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	envelope, err := dsse.WrapSigner(signer(t, priv), types.IntotoPayloadType).SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	att, err := static.NewAttestation(envelope, withChain(certChain,
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(map[string]string{"predicateType": predicateType}))...)
	if err != nil {
		t.Fatal(err)
	}
	return att
}

// AttachAttestation adds att to the attestations of d (which may be an
// attestation made for another digest: a copied attestation).
func (r *Registry) AttachAttestation(t T, d name.Digest, att oci.Signature) {
	t.Helper()
	r.attach(t, d, att, mutate.AttachAttestationToEntity, ociremote.WriteAttestations)
}

// Attestations returns the attestations attached to d.
func (r *Registry) Attestations(t T, d name.Digest) []oci.Signature {
	t.Helper()
	return r.attached(t, d, oci.SignedEntity.Attestations)
}
