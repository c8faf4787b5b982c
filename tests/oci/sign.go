package oci

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v3/pkg/oci"
	"github.com/sigstore/cosign/v3/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
)

// Key is a cosign signing key.
type Key struct {
	priv *ecdsa.PrivateKey
	// PublicPEM is the public key as a policy names it.
	PublicPEM string
}

// NewKey generates an ECDSA P-256 key, as `cosign generate-key-pair` does.
func NewKey(t T) *Key {
	t.Helper()
	priv := newECDSA(t)
	return &Key{priv: priv, PublicPEM: string(publicPEM(t, priv))}
}

// Signature returns k's cosign signature of d, attached nowhere yet: attached
// to another image, it is a copied signature.
func (k *Key) Signature(t T, d name.Digest) oci.Signature {
	t.Helper()
	return Signature(t, d, k.priv, nil)
}

// Sign makes a cosign signature for the digest d with k and attaches it to
// d's signature tag in the registry, as `cosign sign --key` does (without a
// transparency log entry).
func (r *Registry) Sign(t T, d name.Digest, k *Key) {
	t.Helper()
	r.Attach(t, d, k.Signature(t, d))
}

// Signature makes the cosign signature of d with priv; certChain, if set, is the
// PEM of the signing certificate followed by its chain (keyless signing).
func Signature(t T, d name.Digest, priv *ecdsa.PrivateKey, certChain [][]byte) oci.Signature {
	t.Helper()
	payload, err := (&sigpayload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := signer(t, priv).SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), withChain(certChain)...)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// signer signs with priv as cosign does with an ECDSA key: SHA-256.
func signer(t T, priv *ecdsa.PrivateKey) signature.SignerVerifier {
	t.Helper()
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

// withChain attaches certChain (leaf first), if any, to a signature or
// attestation.
func withChain(certChain [][]byte, opts ...static.Option) []static.Option {
	if len(certChain) > 0 {
		opts = append(opts, static.WithCertChain(certChain[0], bytes.Join(certChain[1:], nil)))
	}
	return opts
}

// Attach adds sig to the signatures of d (which may be a signature made for
// another digest: a copied signature).
func (r *Registry) Attach(t T, d name.Digest, sig oci.Signature) {
	t.Helper()
	r.attach(t, d, sig, mutate.AttachSignatureToEntity, ociremote.WriteSignatures)
}

// attach adds sig to what of d (its signatures or its attestations) with
// cosign's functions for it, as the cosign CLI does.
func (r *Registry) attach(t T, d name.Digest, sig oci.Signature,
	add func(oci.SignedEntity, oci.Signature, ...mutate.SignOption) (oci.SignedEntity, error),
	write func(name.Repository, oci.SignedEntity, ...ociremote.Option) error,
) {
	t.Helper()
	ro := ociremote.WithRemoteOptions(r.RemoteOptions()...)
	se, err := ociremote.SignedEntity(d, ro)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	se, err = add(se, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(d.Context(), se, ro); err != nil {
		t.Fatalf("attach to %s: %v", d, err)
	}
}

// Signatures returns the signatures attached to d.
func (r *Registry) Signatures(t T, d name.Digest) []oci.Signature {
	t.Helper()
	return r.attached(t, d, oci.SignedEntity.Signatures)
}

// attached returns the signatures or the attestations (what) of d.
func (r *Registry) attached(t T, d name.Digest, what func(oci.SignedEntity) (oci.Signatures, error)) []oci.Signature {
	t.Helper()
	se, err := ociremote.SignedEntity(d, ociremote.WithRemoteOptions(r.RemoteOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := what(se)
	if err != nil {
		t.Fatal(err)
	}
	list, err := sigs.Get()
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Fulcio stands in for a Fulcio CA: a self-signed root and, as Fulcio has, an
// intermediate that issues short-lived code-signing certificates carrying the
// OIDC issuer and subject.
type Fulcio struct {
	key  *ecdsa.PrivateKey // the intermediate's
	cert *x509.Certificate // the intermediate
	// RootPEM is the root certificate: the trusted root a keyless authority names.
	RootPEM []byte
	// IntermediatePEM is the certificate that issues the leaves. Signatures
	// carry it in their chain; a trusted-root file may list it too.
	IntermediatePEM []byte
}

// Fulcio's certificate extensions for the OIDC issuer.
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// NewFulcio creates a CA whose root and intermediate are valid from a day ago
// for two days.
func NewFulcio(t T) *Fulcio {
	t.Helper()
	now := time.Now()
	ca := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"bulwark test"}},
			NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
	}
	rootKey, key := newECDSA(t), newECDSA(t)
	root, rootPEM := createCert(t, ca(1, "bulwark test fulcio"), nil, rootKey.Public(), rootKey)
	tmpl := ca(2, "bulwark test fulcio intermediate")
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	cert, certPEM := createCert(t, tmpl, root, key.Public(), rootKey)
	return &Fulcio{key: key, cert: cert, RootPEM: rootPEM, IntermediatePEM: certPEM}
}

// SignKeyless signs d as `cosign sign` does keyless: a fresh key, a 10-minute
// certificate from f for issuer and subject (an email address or a URI), and
// the signature with the certificate chain attached in the registry.
func (r *Registry) SignKeyless(t T, d name.Digest, f *Fulcio, issuer, subject string) {
	t.Helper()
	priv, chain := f.Issue(t, issuer, subject)
	r.Attach(t, d, Signature(t, d, priv, chain))
}

// Issue returns a new key and the PEM chain (leaf, intermediate, root) of its
// certificate, valid from a minute ago for 10 minutes.
func (f *Fulcio) Issue(t T, issuer, subject string) (*ecdsa.PrivateKey, [][]byte) {
	t.Helper()
	return f.IssueAt(t, issuer, subject, time.Now().Add(-time.Minute), 10*time.Minute)
}

// IssueAt is Issue with a certificate valid from notBefore for validity. As
// Fulcio does, the certificate carries the issuer in both the legacy raw-string
// extension and the DER UTF8String one, and subject as a URI when it has a
// scheme, else as an email address.
func (f *Fulcio) IssueAt(t T, issuer, subject string, notBefore time.Time, validity time.Duration) (*ecdsa.PrivateKey, [][]byte) {
	t.Helper()
	priv := newECDSA(t)
	v2, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    notBefore, NotAfter: notBefore.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{
			{Id: oidIssuerV1, Value: []byte(issuer)},
			{Id: oidIssuerV2, Value: v2},
		},
	}
	if u, err := url.Parse(subject); err == nil && u.Scheme != "" {
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{subject}
	}
	_, leaf := createCert(t, tmpl, f.cert, priv.Public(), f.key)
	return priv, [][]byte{leaf, f.IntermediatePEM, f.RootPEM}
}

func newECDSA(t T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func publicPEM(t T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// createCert issues tmpl for pub, signed by parentKey as parent (self-signed
// when parent is nil), and returns it parsed and as PEM.
func createCert(t T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
