package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/tuf"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// check is one authority of a request: how to verify it, and what verifying
// the items of one kind (signatures, attestations) of one digest against it
// found.
type check struct {
	authority verify.Authority
	label     string // `key "release"`, for messages
	kind      *kind
	co        *cosign.CheckOpts
	loadErr   error // the authority could not be loaded: it verifies nothing

	// signers identifies who made each item that verified: the key's
	// fingerprint, or the certificate's issuer and subjects. Two authorities
	// count as two only if distinct signers satisfy them.
	signers []string
	reasons []string // distinct reasons items failed, in order of first appearance
}

// check prepares the verification of authority a (the i-th of the request).
func (v *Verifier) check(ctx context.Context, i int, a verify.Authority) check {
	c := check{authority: a, label: label(i, a), kind: &signatures}
	c.co, c.loadErr = v.checkOpts(ctx, a)
	return c
}

// fresh returns the check of the same authority for items of kind k, with
// nothing found yet: the same options, but k's claims.
func (c *check) fresh(k *kind) check {
	n := check{authority: c.authority, label: c.label, kind: k, loadErr: c.loadErr}
	if c.co != nil {
		co := *c.co
		co.ClaimVerifier = k.claims
		n.co = &co
	}
	return n
}

// run verifies every item against the authority with cosign, recording the
// signers that verify and the reasons the others do not.
func (c *check) run(ctx context.Context, items []fetched, h v1.Hash) {
	if c.loadErr != nil {
		c.addReason(c.loadErr.Error())
		return
	}
	for _, f := range items {
		if f.err != nil {
			c.addReason(f.err.Error())
			continue
		}
		if err := c.kind.verify(ctx, f.sig, h, c.co); err != nil {
			c.addReason(c.reason(f.sig, err))
			continue
		}
		c.addSigner(signerOf(c.co, f.sig))
	}
}

func (c *check) addReason(r string) {
	for _, have := range c.reasons {
		if have == r {
			return
		}
	}
	c.reasons = append(c.reasons, r)
}

func (c *check) addSigner(s string) {
	for _, have := range c.signers {
		if have == s {
			return
		}
	}
	c.signers = append(c.signers, s)
}

// label names an authority in messages: `key "release"`, `identity "ci"`.
func label(i int, a verify.Authority) string {
	kind := "authority"
	switch {
	case a.Key != nil:
		kind = "key"
	case a.Keyless != nil:
		kind = "identity"
	}
	n := a.Name
	if n == "" {
		n = fmt.Sprintf("#%d", i+1)
	}
	return fmt.Sprintf("%s %q", kind, n)
}

// checkOpts builds cosign's options for one authority.
func (v *Verifier) checkOpts(ctx context.Context, a verify.Authority) (*cosign.CheckOpts, error) {
	switch {
	case a.Key != nil && a.Keyless != nil:
		return nil, errors.New("authority sets both key and keyless")
	case a.Key != nil:
		kv, err := v.key(ctx, a.Key)
		if err != nil {
			return nil, err
		}
		return &cosign.CheckOpts{
			SigVerifier:   kv,
			ClaimVerifier: claimVerifier,
			// No transparency log at admission: a key signature is trusted for as
			// long as the key is, and Rekor would only add an online dependency.
			IgnoreTlog: true,
			IgnoreSCT:  true,
			Offline:    true,
		}, nil
	case a.Keyless != nil:
		k := a.Keyless
		id, err := identity(k)
		if err != nil {
			return nil, err
		}
		root, err := v.root(k.TrustedRoot)
		if err != nil {
			return nil, err
		}
		return &cosign.CheckOpts{
			ClaimVerifier:     claimVerifier,
			RootCerts:         root.roots,
			IntermediateCerts: root.intermediates, // nil: the signature's own chain supplies them
			Identities:        []cosign.Identity{id},
			// No CT log keys are configured: embedded SCTs are not checked.
			IgnoreSCT: true,
			// With Rekor keys in the trusted root, a signature must carry a Rekor
			// bundle, verified offline (Offline and a nil RekorClient forbid any
			// lookup); its integrated time is when the certificate must have been
			// valid. Without Rekor keys there is no trusted signing time: the
			// certificate must be valid now.
			IgnoreTlog:   root.rekor == nil,
			RekorPubKeys: root.rekor,
			Offline:      true,
		}, nil
	default:
		return nil, errors.New("authority sets neither key nor keyless")
	}
}

// identity turns a keyless authority into cosign's matcher. Regular
// expressions are cosign's: unanchored, as `cosign verify
// --certificate-identity-regexp` treats them.
func identity(k *verify.Keyless) (cosign.Identity, error) {
	if (k.Issuer == "") == (k.IssuerRegExp == "") {
		return cosign.Identity{}, errors.New("keyless authority must set exactly one of issuer and issuerRegExp")
	}
	if (k.Subject == "") == (k.SubjectRegExp == "") {
		return cosign.Identity{}, errors.New("keyless authority must set exactly one of subject and subjectRegExp")
	}
	for _, re := range []string{k.IssuerRegExp, k.SubjectRegExp} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return cosign.Identity{}, fmt.Errorf("keyless authority: %w", err)
		}
	}
	return cosign.Identity{
		Issuer:        k.Issuer,
		IssuerRegExp:  k.IssuerRegExp,
		Subject:       k.Subject,
		SubjectRegExp: k.SubjectRegExp,
	}, nil
}

// parsedKey is an inline PEM key, parsed once (errors included: the same text
// always fails the same way).
type parsedKey struct {
	v   *keyVerifier
	err error
}

// secretKey is a key read from a Secret, and when.
type secretKey struct {
	v    *keyVerifier
	read time.Time
}

// key returns the verifier of a public key, from the cache when it can.
func (v *Verifier) key(ctx context.Context, k *verify.Key) (*keyVerifier, error) {
	switch {
	case k.PEM != "" && k.SecretRef != nil:
		return nil, errors.New("key sets both pem and secretRef")
	case k.PEM != "":
		v.mu.Lock()
		p, ok := v.pemKeys[k.PEM]
		v.mu.Unlock()
		if !ok {
			p.v, p.err = parseKey([]byte(k.PEM))
			v.mu.Lock()
			v.pemKeys[k.PEM] = p
			v.mu.Unlock()
		}
		return p.v, p.err
	case k.SecretRef != nil:
		ref := *k.SecretRef
		if v.secretKey == nil {
			return nil, fmt.Errorf("key %q of Secret %q: no Secret reader is configured", ref.Key, ref.Name)
		}
		now := v.now()
		v.mu.Lock()
		e, ok := v.secretKeys[ref]
		v.mu.Unlock()
		if ok && now.Sub(e.read) < SecretKeyRefresh {
			return e.v, nil
		}
		// A failed read is not cached and does not fall back to the previous key:
		// a deleted Secret must stop verifying.
		b, err := v.secretKey(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("read key %q of Secret %q: %w", ref.Key, ref.Name, err)
		}
		kv, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("key %q of Secret %q: %w", ref.Key, ref.Name, err)
		}
		v.mu.Lock()
		v.secretKeys[ref] = secretKey{v: kv, read: now}
		v.mu.Unlock()
		return kv, nil
	default:
		return nil, errors.New("key sets neither pem nor secretRef")
	}
}

// parseKey parses a PEM public key the way cosign's --key does.
func parseKey(pemBytes []byte) (*keyVerifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sv, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &keyVerifier{Verifier: sv, id: "key:" + hex.EncodeToString(sum[:])}, nil
}

// keyVerifier is a public key's verifier that marks a failed cryptographic check
// with invalidSignatureError, so the reason is classified by type.
type keyVerifier struct {
	signature.Verifier
	id string // fingerprint: the signer of every signature it verifies
}

// VerifySignature implements signature.Verifier.
func (k *keyVerifier) VerifySignature(sig, message io.Reader, opts ...signature.VerifyOption) error {
	if err := k.Verifier.VerifySignature(sig, message, opts...); err != nil {
		return &invalidSignatureError{err: err}
	}
	return nil
}

// signerOf identifies who made a signature that verified under co.
func signerOf(co *cosign.CheckOpts, sig oci.Signature) string {
	if kv, ok := co.SigVerifier.(*keyVerifier); ok {
		return kv.id
	}
	cert, err := sig.Cert()
	if err != nil || cert == nil { // cannot happen: keyless verification needs the certificate
		return "unknown"
	}
	issuer, sans := certIdentity(cert)
	sort.Strings(sans)
	return "cert:" + issuer + "\x00" + strings.Join(sans, "\x00")
}

// certIdentity returns the OIDC issuer and the subjects of a Fulcio certificate,
// as cosign reads them.
func certIdentity(cert *x509.Certificate) (issuer string, subjects []string) {
	ce := cosign.CertExtensions{Cert: cert}
	return ce.GetIssuer(), cryptoutils.GetSubjectAlternateNames(cert)
}

// trustedRoot is a parsed trusted-root file.
type trustedRoot struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool                        // nil when the file has none
	rekor         *cosign.TrustedTransparencyLogPubKeys // nil when the file has none
}

// root returns the trusted root at path, read once and cached.
func (v *Verifier) root(path string) (*trustedRoot, error) {
	if path == "" {
		return nil, errors.New("keyless authority names no trusted root")
	}
	// The lock is held across the read (a small local file, once per path) so
	// that concurrent first uses read it once.
	v.mu.Lock()
	defer v.mu.Unlock()
	if r, ok := v.roots[path]; ok {
		return r, nil
	}
	// A failed read is not cached: the file may be mounted later.
	b, err := v.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trusted root: %w", err)
	}
	r, err := parseTrustedRoot(b)
	if err != nil {
		return nil, fmt.Errorf("trusted root %s: %w", path, err)
	}
	v.roots[path] = r
	return r, nil
}

// parseTrustedRoot reads PEM blocks: CERTIFICATE blocks are Fulcio roots
// (self-signed) and intermediates, PUBLIC KEY blocks are Rekor public keys.
func parseTrustedRoot(b []byte) (*trustedRoot, error) {
	r := &trustedRoot{roots: x509.NewCertPool()}
	rekor := cosign.NewTrustedTransparencyLogPubKeys()
	roots := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			if bytes.Equal(cert.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(cert) == nil {
				r.roots.AddCert(cert)
				roots++
				continue
			}
			if r.intermediates == nil {
				r.intermediates = x509.NewCertPool()
			}
			r.intermediates.AddCert(cert)
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse Rekor public key: %w", err)
			}
			// cosign verifies Rekor bundles with ECDSA keys only.
			if _, ok := pub.(*ecdsa.PublicKey); !ok {
				return nil, fmt.Errorf("rekor public key is %T, not ECDSA", pub)
			}
			if err := rekor.AddTransparencyLogPubKey(pem.EncodeToMemory(block), tuf.Active); err != nil {
				return nil, fmt.Errorf("add Rekor public key: %w", err)
			}
		default:
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
	}
	if roots == 0 {
		return nil, errors.New("no root certificate (a self-signed CERTIFICATE block)")
	}
	if len(rekor.Keys) > 0 {
		r.rekor = &rekor
	}
	return r, nil
}
