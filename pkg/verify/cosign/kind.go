package cosign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
)

// kind is what the Verifier reads next to an image and checks against the
// authorities: its cosign signatures, or its in-toto attestations of one
// predicate type. Both are stored the same way, as the layers of a manifest
// tagged after the image's digest.
type kind struct {
	one, many string // "signature", "signatures": for messages
	article   string // "a" or "an", before one
	// tag is where the items of a digest are stored: sha256-<hex>.sig, .att.
	tag        func(name.Reference, ...ociremote.Option) (name.Tag, error)
	max        int   // items looked at
	maxPayload int64 // bytes of one item
	// claims checks what a verified item says about the image digest.
	claims func(oci.Signature, v1.Hash, map[string]any) error
	// envelope: an item's payload is a DSSE envelope holding an in-toto
	// statement, which must be of predicateType.
	envelope      bool
	predicateType string
}

var (
	signatures = kind{
		one: "signature", many: "signatures", article: "a",
		tag: ociremote.SignatureTag, max: MaxSignatures, maxPayload: maxSignatureBytes,
		claims: claimVerifier,
	}
	attestations = kind{
		one: "attestation", many: "attestations", article: "an",
		tag: ociremote.AttestationTag, max: MaxAttestations, maxPayload: maxAttestationBytes,
		claims: attestationClaimVerifier, envelope: true,
	}
)

// attestationsOf is the attestations of predicate type pt.
func attestationsOf(pt string) *kind {
	k := attestations
	k.predicateType = pt
	return &k
}

// what names the items of d in messages: "the signatures of sha256:…".
func (k *kind) what(d name.Digest) string { return "the " + k.many + " of " + d.DigestStr() }

// verify verifies item against co as `cosign verify` (signatures) or `cosign
// verify-attestation --type` (attestations) does; nil means it verified.
func (k *kind) verify(ctx context.Context, item oci.Signature, h v1.Hash, co *cosign.CheckOpts) error {
	if !k.envelope {
		_, err := cosign.VerifyImageSignature(ctx, item, h, co)
		return err
	}
	// VerifyBlobAttestation is, despite its name, the step VerifyImageAttestation
	// takes for each attestation of an image: the DSSE signature, certificate
	// and bundle, then co.ClaimVerifier against h. VerifyImageAttestation
	// flattens the errors of its list into one string; one at a time keeps why
	// each failed.
	if _, err := cosign.VerifyBlobAttestation(ctx, item, h, co); err != nil {
		return err
	}
	st, err := statementOf(item)
	if err != nil {
		return err
	}
	if st.PredicateType != k.predicateType {
		return &predicateTypeError{found: st.PredicateType, required: k.predicateType}
	}
	return nil
}

// checkSignature verifies only the signature of item, with v.
func (k *kind) checkSignature(item oci.Signature, v signature.Verifier) error {
	p, err := item.Payload()
	if err != nil {
		return err
	}
	if k.envelope {
		// The signature is inside the envelope, over its payload.
		return dsse.WrapVerifier(v).VerifySignature(bytes.NewReader(p), nil)
	}
	raw, err := item.Signature()
	if err != nil {
		return err
	}
	return v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(p))
}

// statement is what the Verifier reads of an in-toto statement.
type statement struct {
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
}

// statementOf decodes the in-toto statement in the DSSE envelope of att, as
// cosign.IntotoSubjectClaimVerifier does.
func statementOf(att oci.Signature) (statement, error) {
	var st statement
	p, err := att.Payload()
	if err != nil {
		return st, err
	}
	var env struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(p, &env); err != nil {
		return st, fmt.Errorf("decode DSSE envelope: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return st, fmt.Errorf("decode DSSE payload: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode in-toto statement: %w", err)
	}
	return st, nil
}

// attestationClaimVerifier is cosign.IntotoSubjectClaimVerifier (what `cosign
// verify-attestation` uses), with its subject mismatch marked as
// otherDigestError.
func attestationClaimVerifier(att oci.Signature, h v1.Hash, annotations map[string]any) error {
	err := cosign.IntotoSubjectClaimVerifier(att, h, annotations)
	if err == nil {
		return nil
	}
	st, serr := statementOf(att)
	if serr != nil {
		return err
	}
	var subjects []string
	for _, s := range st.Subject {
		if d := s.Digest["sha256"]; d != "" {
			subjects = append(subjects, "sha256:"+d)
		}
	}
	return &otherDigestError{noun: "attestation", digest: strings.Join(subjects, ", "), err: err}
}

// predicateTypeError: a verified attestation of another predicate type.
type predicateTypeError struct{ found, required string }

func (e *predicateTypeError) Error() string {
	if e.found == "" {
		return "statement without predicate type found, " + e.required + " required"
	}
	return "predicate type " + e.found + " found, " + e.required + " required"
}
