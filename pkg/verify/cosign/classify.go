package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// invalidSignatureError: the signature does not verify under the public key.
type invalidSignatureError struct{ err error }

func (e *invalidSignatureError) Error() string { return "invalid signature: " + e.err.Error() }
func (e *invalidSignatureError) Unwrap() error { return e.err }

// otherDigestError: a valid signature whose payload names another image digest
// (a signature copied from another image).
type otherDigestError struct {
	digest string // what the payload names; empty when it names none
	err    error
}

func (e *otherDigestError) Error() string {
	if e.digest == "" {
		return "signature payload names no image digest"
	}
	return "signature was made for another digest " + e.digest
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
		return &otherDigestError{digest: sci.Critical.Image.DockerManifestDigest, err: err}
	}
	return err
}

// reason says, for a user, why sig does not verify against the authority.
func (c *check) reason(sig oci.Signature, err error) string {
	var od *otherDigestError
	if errors.As(err, &od) {
		return od.Error()
	}
	var is *invalidSignatureError
	if errors.As(err, &is) {
		return "invalid signature"
	}
	if c.authority.Keyless != nil {
		return keylessReason(sig, c.co, c.authority.Keyless, err)
	}
	return err.Error()
}

// keylessReason diagnoses a failed keyless verification, step by step in the
// order cosign verifies, with cosign's own functions: Rekor bundle, certificate
// chain, identity, signature. Anything else (an expired certificate) is said
// as cosign says it.
func keylessReason(sig oci.Signature, co *cosign.CheckOpts, k *verify.Keyless, err error) string {
	cert, cerr := sig.Cert()
	switch {
	case cerr != nil:
		return fmt.Sprintf("signature certificate does not parse: %v", cerr)
	case cert == nil:
		return "signature carries no certificate (it was made with a key, not keyless)"
	}
	if !co.IgnoreTlog {
		if b, berr := sig.Bundle(); berr == nil && b == nil {
			return "signature carries no Rekor bundle; the trusted root has Rekor keys, so one is required"
		}
		if _, berr := cosign.VerifyBundle(sig, co); berr != nil {
			return fmt.Sprintf("rekor bundle does not verify: %v", berr)
		}
	}
	issuer, subjects := certIdentity(cert)
	got := fmt.Sprintf("issuer=%q subject=%q", issuer, strings.Join(subjects, ","))
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Sprintf("certificate (%s) was not issued by the trusted root %s", got, k.TrustedRoot)
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		return fmt.Sprintf("certificate (%s) rejected: %v", got, ci)
	}
	if cosign.CheckCertificatePolicy(cert, co) != nil {
		return fmt.Sprintf("certificate identity %s does not match %s", got, expectedIdentity(k))
	}
	if err := checkSignature(sig, cert); err != nil {
		return "invalid signature"
	}
	if co.IgnoreTlog && time.Now().After(cert.NotAfter) {
		return fmt.Sprintf("certificate expired at %s; the trusted root has no Rekor keys, so a keyless signature verifies only while its certificate is valid",
			cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return err.Error()
}

// checkSignature verifies sig with the certificate's key, as cosign does.
func checkSignature(sig oci.Signature, cert *x509.Certificate) error {
	sv, err := signature.LoadVerifier(cert.PublicKey, crypto.SHA256)
	if err != nil {
		return err
	}
	raw, err := sig.Signature()
	if err != nil {
		return err
	}
	p, err := sig.Payload()
	if err != nil {
		return err
	}
	return sv.VerifySignature(bytes.NewReader(raw), bytes.NewReader(p))
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

// isRegistryError reports whether err is a failure to talk to the registry
// (refused by the egress guard, an HTTP error status, a transport or context
// error), as opposed to a malformed signature.
func isRegistryError(err error) bool {
	var na *registry.NotAllowedError
	var te *transport.Error
	var ne net.Error
	return errors.As(err, &na) || errors.As(err, &te) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// registryResult classifies a failure to read the signatures of img.
func registryResult(img name.Digest, err error) verify.Result {
	o, detail := registry.Failure(img.RegistryStr(), "the signatures of "+img.DigestStr(), err)
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

// expectation says what an image needs: `a signature by key "release"`.
func expectation(checks []check, threshold int) string {
	all := labels(checks, false)
	switch {
	case threshold == 1 && len(checks) == 1:
		return "a signature by " + all
	case threshold == 1:
		return "a signature by one of " + all
	default:
		return fmt.Sprintf("signatures by %d of %s", threshold, all)
	}
}

// mismatchDetail says why too few authorities verified: how many were needed,
// which verified, and per authority that did not, why its signatures failed.
func mismatchDetail(checks []check, threshold, distinct, checked, found int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s found", found, plural(found, "signature", "signatures"))
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
		fmt.Fprintf(&b, "; only the first %d of %d signatures were checked", checked, found)
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
