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
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
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
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Key{priv: priv, PublicPEM: string(pub)}
}

// Sign makes a cosign signature for the digest d with k and attaches it to
// d's signature tag in the registry, as `cosign sign --key` does (without a
// transparency log entry).
func (r *Registry) Sign(t T, d name.Digest, k *Key) {
	t.Helper()
	r.Attach(t, d, Signature(t, d, k.priv, nil))
}

// Signature makes the cosign signature of d with priv; certChain, if set, is the
// PEM of the signing certificate followed by its chain (keyless signing).
func Signature(t T, d name.Digest, priv *ecdsa.PrivateKey, certChain [][]byte) oci.Signature {
	t.Helper()
	payload, err := (&sigpayload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	var opts []static.Option
	if len(certChain) > 0 {
		opts = append(opts, static.WithCertChain(certChain[0], bytes.Join(certChain[1:], nil)))
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// Attach adds sig to the signatures of d (which may be a signature made for
// another digest: a copied signature).
func (r *Registry) Attach(t T, d name.Digest, sig oci.Signature) {
	t.Helper()
	ro := ociremote.WithRemoteOptions(r.RemoteOptions()...)
	se, err := ociremote.SignedEntity(d, ro)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociremote.WriteSignatures(d.Context(), se, ro); err != nil {
		t.Fatalf("write signatures of %s: %v", d, err)
	}
}

// Signatures returns the signatures attached to d.
func (r *Registry) Signatures(t T, d name.Digest) []oci.Signature {
	t.Helper()
	se, err := ociremote.SignedEntity(d, ociremote.WithRemoteOptions(r.RemoteOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := se.Signatures()
	if err != nil {
		t.Fatal(err)
	}
	list, err := sigs.Get()
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Fulcio stands in for a Fulcio CA: it issues short-lived code-signing
// certificates carrying the OIDC issuer and subject, as Fulcio does.
type Fulcio struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	// RootPEM is the CA certificate: the trusted root a keyless authority names.
	RootPEM []byte
}

// Fulcio's certificate extensions for the OIDC issuer.
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// NewFulcio creates a CA.
func NewFulcio(t T) *Fulcio {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bulwark test fulcio", Organization: []string{"bulwark test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Fulcio{key: key, cert: cert, RootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// SignKeyless signs d as `cosign sign` does keyless: a fresh key, a 10-minute
// certificate from f for issuer and subject (an email address or a URI), and
// the signature with the certificate chain attached in the registry.
func (r *Registry) SignKeyless(t T, d name.Digest, f *Fulcio, issuer, subject string) {
	t.Helper()
	priv, chain := f.Issue(t, issuer, subject)
	r.Attach(t, d, Signature(t, d, priv, chain))
}

// Issue returns a new key and the PEM chain (leaf, root) of its certificate.
func (f *Fulcio) Issue(t T, issuer, subject string) (*ecdsa.PrivateKey, [][]byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(10 * time.Minute),
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.cert, priv.Public(), f.key)
	if err != nil {
		t.Fatal(err)
	}
	return priv, [][]byte{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), f.RootPEM}
}
