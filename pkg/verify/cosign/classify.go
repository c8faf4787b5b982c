package cosign

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// invalidSignatureError: the signature does not verify under the public key.
type invalidSignatureError struct{ err error }

func (e *invalidSignatureError) Error() string { return "invalid signature: " + e.err.Error() }
func (e *invalidSignatureError) Unwrap() error { return e.err }

// otherDigestError: a valid signature or attestation whose payload names
// another image digest (one copied from another image).
type otherDigestError struct {
	noun   string // "signature", "attestation"
	digest string // what the payload names; empty when it names none
	err    error
}

func (e *otherDigestError) Error() string {
	if e.digest == "" {
		return e.noun + " payload names no image digest"
	}
	return e.noun + " was made for another digest " + e.digest
}
func (e *otherDigestError) Unwrap() error { return e.err }

// claimVerifier is cosign.SimpleClaimVerifier, with its digest mismatch (a plain
// fmt error upstream) marked as otherDigestError.
func claimVerifier(sig oci.Signature, h v1.Hash, annotations map[string]any) error {
	err := cosign.SimpleClaimVerifier(sig, h, annotations)
	if err == nil {
		return nil
	}
	p, perr := sig.Payload()
	if perr != nil {
		return err
	}
	var sci payload.SimpleContainerImage
	if json.Unmarshal(p, &sci) == nil && sci.Critical.Image.DockerManifestDigest != h.String() {
		return &otherDigestError{noun: "signature", digest: sci.Critical.Image.DockerManifestDigest, err: err}
	}
	return err
}

// reason says, for a user, why sig (a signature or an attestation) does not
// verify against the authority.
func (c *check) reason(sig oci.Signature, err error) string {
	var od *otherDigestError
	var pt *predicateTypeError
	if errors.As(err, &od) || errors.As(err, &pt) {
		return err.Error()
	}
	var is *invalidSignatureError
	if errors.As(err, &is) {
		return "invalid signature"
	}
	if c.authority.Keyless != nil {
		return keylessReason(c.kind, sig, c.co, c.authority.Keyless, err)
	}
	// The DSSE verifier of an attestation drops the key's error: check again.
	if c.kind.envelope && c.kind.checkSignature(sig, c.co.SigVerifier) != nil {
		return "invalid signature"
	}
	return err.Error()
}

// keylessReason diagnoses a failed keyless verification of sig (an item of
// kind k), step by step in the order cosign verifies, with cosign's own
// functions: Rekor bundle, certificate chain, identity, signature. Anything
// else (an expired certificate) is said as cosign says it.
func keylessReason(k *kind, sig oci.Signature, co *cosign.CheckOpts, kl *verify.Keyless, err error) string {
	cert, cerr := sig.Cert()
	switch {
	case cerr != nil:
		return fmt.Sprintf("%s certificate does not parse: %v", k.one, cerr)
	case cert == nil:
		return k.one + " carries no certificate (it was made with a key, not keyless)"
	}
	if !co.IgnoreTlog {
		if b, berr := sig.Bundle(); berr == nil && b == nil {
			return k.one + " carries no Rekor bundle; the trusted root has Rekor keys, so one is required"
		}
		if _, berr := cosign.VerifyBundle(sig, co); berr != nil {
			return fmt.Sprintf("rekor bundle does not verify: %v", berr)
		}
	}
	issuer, subjects := certIdentity(cert)
	got := fmt.Sprintf("issuer=%q subject=%q", issuer, strings.Join(subjects, ","))
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Sprintf("certificate (%s) was not issued by the trusted root %s", got, kl.TrustedRoot)
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		return fmt.Sprintf("certificate (%s) rejected: %v", got, ci)
	}
	if cosign.CheckCertificatePolicy(cert, co) != nil {
		return fmt.Sprintf("certificate identity %s does not match %s", got, expectedIdentity(kl))
	}
	if sv, lerr := signature.LoadVerifier(cert.PublicKey, crypto.SHA256); lerr != nil || k.checkSignature(sig, sv) != nil {
		return "invalid signature"
	}
	if co.IgnoreTlog && time.Now().After(cert.NotAfter) {
		return fmt.Sprintf("certificate expired at %s; the trusted root has no Rekor keys, so a keyless %s verifies only while its certificate is valid",
			cert.NotAfter.UTC().Format(time.RFC3339), k.one)
	}
	return err.Error()
}

func expectedIdentity(k *verify.Keyless) string {
	var b strings.Builder
	if k.IssuerRegExp != "" {
		fmt.Fprintf(&b, "issuer=~%q", k.IssuerRegExp)
	} else {
		fmt.Fprintf(&b, "issuer=%q", k.Issuer)
	}
	if k.SubjectRegExp != "" {
		fmt.Fprintf(&b, " subject=~%q", k.SubjectRegExp)
	} else {
		fmt.Fprintf(&b, " subject=%q", k.Subject)
	}
	return b.String()
}

// registryResult classifies a failure to read what (e.g. "the signatures of
// sha256:…") of img.
func registryResult(img name.Digest, what string, err error) verify.Result {
	o, detail := registry.Failure(img.RegistryStr(), what, err)
	return verify.Result{Outcome: o, Detail: detail}
}

// distinctSigners is how many authorities distinct signers satisfy: the size
// of a maximum matching between authorities and the signers that satisfy them,
// so one key named twice, or one certificate matching two identities, counts
// once.
func distinctSigners(checks []check) int {
	owner := map[string]int{} // signer → check it is matched to
	var match func(ci int, seen map[string]bool) bool
	match = func(ci int, seen map[string]bool) bool {
		for _, s := range checks[ci].signers {
			if seen[s] {
				continue
			}
			seen[s] = true
			if o, taken := owner[s]; !taken || match(o, seen) {
				owner[s] = ci
				return true
			}
		}
		return false
	}
	n := 0
	for ci := range checks {
		if match(ci, map[string]bool{}) {
			n++
		}
	}
	return n
}

// labels lists the authorities that verified (satisfied) or all of them.
func labels(checks []check, satisfied bool) string {
	var ls []string
	for _, c := range checks {
		if !satisfied || len(c.signers) > 0 {
			ls = append(ls, c.label)
		}
	}
	return strings.Join(ls, ", ")
}

// noneFound says that an image has no items of kind k, and what it needs:
// `no signatures found; expected a signature by key "release"`.
func noneFound(k *kind, checks []check, threshold int) string {
	all := labels(checks, false)
	var want string
	switch {
	case threshold == 1 && len(checks) == 1:
		want = k.article + " " + k.one + " by " + all
	case threshold == 1:
		want = k.article + " " + k.one + " by one of " + all
	default:
		want = fmt.Sprintf("%s by %d of %s", k.many, threshold, all)
	}
	return "no " + k.many + " found; expected " + want
}

// mismatchDetail says why too few authorities verified items of kind k: how
// many were needed, which verified, and per authority that did not, why its
// items failed.
func mismatchDetail(k *kind, checks []check, threshold, distinct, checked, found int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s found", found, plural(found, k.one, k.many))
	verified := labels(checks, true)
	switch {
	case checked == 0:
		fmt.Fprintf(&b, ", more than cosign reads; none checked")
	case threshold == 1:
		b.WriteString(", none verifies")
	case verified == "":
		fmt.Fprintf(&b, "; %d of %d authorities required, none verified", threshold, len(checks))
	default:
		fmt.Fprintf(&b, "; %d of %d authorities required, %d verified (%s)", threshold, len(checks), distinct, verified)
		if n := satisfiedCount(checks); n > distinct {
			fmt.Fprintf(&b, " but by only %d distinct %s", distinct, plural(distinct, "signer", "signers"))
		}
	}
	for _, c := range checks {
		if len(c.signers) > 0 {
			continue
		}
		if len(c.reasons) > 0 {
			fmt.Fprintf(&b, "; %s: %s", c.label, strings.Join(c.reasons, ", "))
		}
	}
	if checked > 0 && found > checked {
		fmt.Fprintf(&b, "; only the first %d of %d %s were checked", checked, found, k.many)
	}
	return b.String()
}

func satisfiedCount(checks []check) int {
	n := 0
	for _, c := range checks {
		if len(c.signers) > 0 {
			n++
		}
	}
	return n
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
