// Package verify owns the types of image-signature verification: the authorities a
// trust rule names, the Verifier interface, its Result, and the decorators around
// it (cache with coalescing). It makes no decision: pkg/policy turns a Result into a
// verdict. The cosign implementation lives in pkg/verify/cosign; only cmd/ wires it.
package verify

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Authority is one party whose signature an image may carry: a public key or a
// keyless (Fulcio-certified) identity. Exactly one of Key and Keyless is set.
type Authority struct {
	// Name identifies the authority in messages, e.g. "release-key".
	Name    string   `json:"name"`
	Key     *Key     `json:"key,omitempty"`
	Keyless *Keyless `json:"keyless,omitempty"`
}

// Key is a public key, PEM inline or from a Secret in bulwark's own namespace.
// Exactly one of PEM and SecretRef is set.
type Key struct {
	PEM       string     `json:"pem,omitempty"`
	SecretRef *SecretRef `json:"secretRef,omitempty"`
}

// SecretRef names a key of a Secret in bulwark's namespace.
type SecretRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// Keyless is a signing identity certified by a Fulcio CA: the OIDC issuer and
// subject of the certificate, each exact or a regular expression (exactly one of
// each pair). TrustedRoot is a file of PEM blocks: the Fulcio root (and
// intermediate) certificates, and optionally the Rekor public keys; with Rekor keys
// a signature must carry a Rekor bundle, verified offline.
type Keyless struct {
	Issuer        string `json:"issuer,omitempty"`
	IssuerRegExp  string `json:"issuerRegExp,omitempty"`
	Subject       string `json:"subject,omitempty"`
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
	TrustedRoot   string `json:"trustedRoot"`
}

// Outcome is what verification of one digest found.
type Outcome string

const (
	// Verified: at least Threshold authorities signed this digest.
	Verified Outcome = "Verified"
	// Unsigned: the image has no signature at all.
	Unsigned Outcome = "Unsigned"
	// Mismatch: signatures exist but too few verify against the authorities
	// (another key, another identity, or a signature made for another digest).
	Mismatch Outcome = "Mismatch"
	// NotAllowed: the registry is not on the egress allow-list; nothing was sent.
	NotAllowed Outcome = "NotAllowed"
	// Unauthorized: the registry refused the credentials (or their absence).
	Unauthorized Outcome = "Unauthorized"
	// AttestationMissing: the signature verified, but an attestation of a
	// required predicate type from the authorities did not.
	AttestationMissing Outcome = "AttestationMissing"
	// Unavailable: the registry could not be reached or answered 5xx/429, or the
	// budget ran out. Transient: never cached.
	Unavailable Outcome = "Unavailable"
)

// Result is the outcome of verifying one digest against one trust rule.
type Result struct {
	Outcome Outcome
	// Detail says what was found, for the user: which authorities verified, which
	// failed and why, which registry was unreachable. Never carries credentials.
	Detail string
	// Satisfied names the authorities whose signature verified.
	Satisfied []string
}

// Transient reports whether r may change on retry without any change to the image
// or the policy; transient results are not cached.
func (r Result) Transient() bool {
	return r.Outcome == Unavailable || r.Outcome == Unauthorized
}

// Request asks whether Image carries signatures of at least Threshold of
// Authorities.
type Request struct {
	Image       name.Digest
	Authorities []Authority
	// Threshold defaults to 1 when zero.
	Threshold int
	// Attestations are in-toto predicate types (e.g.
	// https://slsa.dev/provenance/v1) of which the image must also carry a
	// verified attestation from Threshold of the Authorities.
	Attestations []string
	// AllPlatforms: when Image is an index, every platform manifest must verify
	// too, not only the index.
	AllPlatforms bool
	// Keychain gives credentials for the image's registry (the pod's pull secrets);
	// nil means anonymous.
	Keychain authn.Keychain
}

// Verifier verifies the signatures of one image, identified by digest.
type Verifier interface {
	Verify(ctx context.Context, req Request) Result
}
