package certs

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Keys of a self-managed certificate Secret.
const (
	// CABundleKey holds the CA bundle (PEM): the current CA first, then older CAs
	// kept while a serving certificate they signed may still be served. It is the
	// caBundle of the webhook configurations.
	CABundleKey = "ca.crt"
	// CAKeyKey holds the current CA's private key (PEM).
	CAKeyKey = "ca.key"
	// CertKey holds the serving certificate (PEM).
	CertKey = "tls.crt"
	// KeyKey holds the serving certificate's private key (PEM).
	KeyKey = "tls.key"
)

// Backdate is how long before its issue a certificate's NotBefore lies, so that a
// verifier whose clock is behind ours accepts it at once.
const Backdate = time.Minute

// ServiceNames returns the DNS names under which clients in the cluster reach
// Service service in namespace: service.namespace.svc (what the API server
// verifies for a webhook's service reference) first.
func ServiceNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		service + "." + namespace,
		service,
	}
}

// SplitHosts sorts extra subject alternative names into IP addresses and DNS names.
func SplitHosts(hosts []string) (dnsNames []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

// Spec is what self-managed certificates must be.
type Spec struct {
	// CommonName names the serving certificate when it has no DNS names, and
	// prefixes the CA's common name.
	CommonName string
	// DNSNames and IPs are the serving certificate's subject alternative names.
	DNSNames []string
	IPs      []net.IP
	// CertValidity is the serving certificate's lifetime; CAValidity the CA's.
	// Each is renewed when less than a third of its lifetime remains.
	CertValidity time.Duration
	CAValidity   time.Duration
	// Propagation is how long the webhook configurations must have trusted a new
	// CA before a serving certificate it signed replaces one that is still valid:
	// API servers learn of the new caBundle through a watch.
	Propagation time.Duration
}

// Serving is a serving certificate and its key.
type Serving struct {
	Leaf *x509.Certificate
	KeyPair
}

// Material is the content of a self-managed certificate Secret.
type Material struct {
	// Bundle is ca.crt: the current CA first, then older CAs still trusted.
	Bundle []*x509.Certificate
	// CA is Bundle[0] with its key (ca.key); nil when either is missing or they
	// do not belong together.
	CA *CA
	// Serving is tls.crt with tls.key; nil when either is missing or they do not
	// belong together.
	Serving *Serving
}

// Parse reads a self-managed certificate Secret's data. It keeps every part that
// is usable and returns, joined, what is wrong with the others; nil or empty data
// yields an empty Material and an error naming the missing keys.
func Parse(data map[string][]byte) (Material, error) {
	var m Material
	var errs []error
	rest := data[CABundleKey]
	for n := 1; len(bytes.TrimSpace(rest)) > 0; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			errs = append(errs, fmt.Errorf("%s: certificate %d is not PEM", CABundleKey, n))
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		switch {
		case block.Type != "CERTIFICATE":
			errs = append(errs, fmt.Errorf("%s: block %d is a %s, not a CERTIFICATE", CABundleKey, n, block.Type))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: certificate %d: %w", CABundleKey, n, err))
		case !c.IsCA:
			errs = append(errs, fmt.Errorf("%s: certificate %d (%s) is not a CA", CABundleKey, n, c.Subject.CommonName))
		default:
			m.Bundle = append(m.Bundle, c)
		}
	}
	if len(m.Bundle) == 0 {
		errs = append(errs, fmt.Errorf("%s: no CA certificate", CABundleKey))
	} else if key, err := parseECKey(data[CAKeyKey]); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", CAKeyKey, err))
	} else if !key.PublicKey.Equal(m.Bundle[0].PublicKey) {
		errs = append(errs, fmt.Errorf("%s does not belong to the first certificate of %s", CAKeyKey, CABundleKey))
	} else {
		m.CA = &CA{Cert: m.Bundle[0], Key: key, CertPEM: encodeCert(m.Bundle[0])}
	}
	pair, err := tls.X509KeyPair(data[CertKey], data[KeyKey])
	if err != nil {
		errs = append(errs, fmt.Errorf("%s and %s: %w", CertKey, KeyKey, err))
	} else if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", CertKey, err))
	} else {
		m.Serving = &Serving{Leaf: leaf, KeyPair: KeyPair{CertPEM: data[CertKey], KeyPEM: data[KeyKey]}}
	}
	return m, errors.Join(errs...)
}

func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an EC private key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, want an ECDSA key", k)
	}
	return ec, nil
}

// Data renders m as Secret data. It needs m.CA and m.Serving.
func (m Material) Data() (map[string][]byte, error) {
	if m.CA == nil || m.Serving == nil {
		return nil, errors.New("certificate material without a CA or a serving certificate")
	}
	key, err := x509.MarshalECPrivateKey(m.CA.Key)
	if err != nil {
		return nil, fmt.Errorf("marshal CA key: %w", err)
	}
	return map[string][]byte{
		CABundleKey: EncodeBundle(m.Bundle),
		CAKeyKey:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key}),
		CertKey:     m.Serving.CertPEM,
		KeyKey:      m.Serving.KeyPEM,
	}, nil
}

// EncodeBundle returns cas as concatenated PEM, in order.
func EncodeBundle(cas []*x509.Certificate) []byte {
	var b []byte
	for _, c := range cas {
		b = append(b, encodeCert(c)...)
	}
	return b
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Salvage returns m with the parts it lacks (no usable bundle, no usable serving
// certificate) taken from last, the material a replica serves. Planned from it, a
// deleted or spoilt Secret rotates to a new CA as gently as a scheduled rotation:
// the served certificate and the CAs that verify it stay until the new CA is
// trusted. last's CA is never taken over: a missing CA key means a new CA.
func Salvage(m, last Material) Material {
	if len(m.Bundle) == 0 {
		m.Bundle = last.Bundle
		m.CA = nil
	}
	if m.Serving == nil {
		m.Serving = last.Serving
	}
	return m
}

// ServingCertificate returns the serving certificate for a TLS server if it is
// valid at now and signed by a CA of the bundle, so that what is served is what
// the webhook configurations trust.
func (m Material) ServingCertificate(now time.Time) (*tls.Certificate, error) {
	if m.Serving == nil {
		return nil, fmt.Errorf("no usable %s and %s", CertKey, KeyKey)
	}
	if err := verifyServing(m.Serving.Leaf, m.Bundle, now); err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(m.Serving.CertPEM, m.Serving.KeyPEM)
	if err != nil {
		return nil, err
	}
	pair.Leaf = m.Serving.Leaf
	return &pair, nil
}

func verifyServing(leaf *x509.Certificate, bundle []*x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	for _, c := range bundle {
		roots.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// Decision is what Plan decided.
type Decision struct {
	// Next is what the Secret must hold; nil: what it holds is right.
	Next *Material
	// Reasons say why Next differs from what the Secret holds, for the log.
	Reasons []string
	// Recheck is when Plan must run again at the latest: the next renewal, the
	// end of a propagation wait, or the time an old CA leaves the bundle.
	Recheck time.Time
}

// Plan decides, at now, what a self-managed certificate Secret holding m must
// hold instead. caTrustedSince is when the webhook configurations were seen
// holding a bundle that starts with m's current CA (zero: not seen).
//
// A CA or serving certificate that is missing, unusable, expired or past two
// thirds of its lifetime is replaced. A new CA goes first in the bundle, in front
// of the CAs it replaces, and signs the serving certificate only once the
// configurations have trusted it for spec.Propagation, unless no valid serving
// certificate is left to wait with. Older CAs leave the bundle spec.Propagation
// after the serving certificate they signed was replaced. Plan of its own result
// is no change.
func Plan(now time.Time, m Material, spec Spec, caTrustedSince time.Time) (Decision, error) {
	var d Decision
	next := Material{Bundle: slices.Clone(m.Bundle), CA: m.CA, Serving: m.Serving}
	if reason := caProblem(now, m.CA, spec); reason != "" {
		ca, err := newCA(fmt.Sprintf("%s-ca@%d", spec.CommonName, now.Unix()), now, spec.CAValidity)
		if err != nil {
			return d, err
		}
		d.Reasons = append(d.Reasons, reason)
		// Older CAs stay in the bundle: the served certificate was signed by one.
		next.Bundle = append([]*x509.Certificate{ca.Cert}, slices.DeleteFunc(next.Bundle, func(c *x509.Certificate) bool {
			return !now.Before(c.NotAfter)
		})...)
		next.CA = ca
		caTrustedSince = time.Time{}
	}
	ca := next.CA.Cert
	d.Recheck = renewAt(ca)

	problem, mismatch := servingProblem(now, next.Serving, next.Bundle, spec)
	switch {
	case problem != "":
		// Nothing valid to keep serving: issue at once, even from a CA the API
		// servers may not trust yet (first start, or a Secret spoilt by hand).
	case !signedBy(next.Serving.Leaf, ca):
		// The current CA is new: an API server still holding the old caBundle
		// would refuse a certificate it signed. Keep serving the valid one — even
		// with other names or a longer life, as after a switch from cert-manager —
		// until the configurations have held the new CA for spec.Propagation.
		if trusted := caTrustedSince.Add(spec.Propagation); caTrustedSince.IsZero() || now.Before(trusted) {
			if caTrustedSince.IsZero() {
				trusted = now.Add(spec.Propagation)
			}
			d.Recheck = earliest(d.Recheck, trusted)
		} else {
			problem = cmp.Or(mismatch, "serving certificate signed by a previous CA")
		}
	case mismatch != "":
		problem = mismatch
	case !now.Before(renewAt(next.Serving.Leaf)):
		problem = "serving certificate due for renewal"
	}
	if problem != "" {
		notAfter := earliest(now.Add(spec.CertValidity), ca.NotAfter)
		cn := spec.CommonName
		if len(spec.DNSNames) > 0 {
			cn = spec.DNSNames[0]
		}
		kp, err := next.CA.issueUntil(servingTemplate(cn, spec.DNSNames, spec.IPs), now, notAfter)
		if err != nil {
			return d, err
		}
		leaf, err := parsePEMCert(kp.CertPEM)
		if err != nil {
			return d, err
		}
		next.Serving = &Serving{Leaf: leaf, KeyPair: *kp}
		d.Reasons = append(d.Reasons, problem)
	}
	if signedBy(next.Serving.Leaf, ca) {
		d.Recheck = earliest(d.Recheck, renewAt(next.Serving.Leaf))
		// Older CAs stay until the serving certificate they signed has been
		// replaced for spec.Propagation (replicas reload the Secret through a
		// watch), or until they expire.
		replaced := issuedAt(next.Serving.Leaf).Add(spec.Propagation)
		kept := []*x509.Certificate{ca}
		for _, c := range next.Bundle[1:] {
			if until := earliest(c.NotAfter, replaced); now.Before(until) && !c.Equal(ca) {
				kept = append(kept, c)
				d.Recheck = earliest(d.Recheck, until)
			}
		}
		if len(kept) < len(next.Bundle) {
			d.Reasons = append(d.Reasons, "previous CA no longer needed")
		}
		next.Bundle = kept
	} else {
		// Waiting for the new CA to propagate; should the old certificate end
		// first, it is replaced then.
		d.Recheck = earliest(d.Recheck, next.Serving.Leaf.NotAfter)
	}
	if len(d.Reasons) > 0 {
		d.Next = &next
	}
	return d, nil
}

// caProblem says why ca must be replaced at now, or "".
func caProblem(now time.Time, ca *CA, spec Spec) string {
	switch {
	case ca == nil:
		return "no usable CA"
	case now.Before(ca.Cert.NotBefore) || !now.Before(ca.Cert.NotAfter):
		return "CA expired or not yet valid"
	case lifetime(ca.Cert) > spec.CAValidity+Backdate:
		return "CA lives longer than its configured validity"
	case !now.Before(renewAt(ca.Cert)):
		return "CA due for renewal"
	}
	return ""
}

// servingProblem says why s cannot be served at now (problem), or why it must be
// replaced though it can still be served until then (mismatch: other names, a
// longer life than configured); "" for none.
func servingProblem(now time.Time, s *Serving, bundle []*x509.Certificate, spec Spec) (problem, mismatch string) {
	switch {
	case s == nil:
		return "no usable serving certificate", ""
	case verifyServing(s.Leaf, bundle, now) != nil:
		return "serving certificate expired or not signed by a CA of the bundle", ""
	case !sameNames(s.Leaf, spec):
		return "", "serving certificate names differ from the configured ones"
	case lifetime(s.Leaf) > spec.CertValidity+Backdate:
		return "", "serving certificate lives longer than its configured validity"
	}
	return "", ""
}

func sameNames(c *x509.Certificate, spec Spec) bool {
	dns := slices.Sorted(slices.Values(c.DNSNames))
	want := slices.Sorted(slices.Values(spec.DNSNames))
	if !slices.Equal(dns, want) {
		return false
	}
	ips := func(l []net.IP) []string {
		var s []string
		for _, ip := range l {
			s = append(s, ip.String())
		}
		slices.Sort(s)
		return s
	}
	return slices.Equal(ips(c.IPAddresses), ips(spec.IPs))
}

func signedBy(c, ca *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, ca.RawSubject) && c.CheckSignatureFrom(ca) == nil
}

// issuedAt is when c was issued: NotBefore lies Backdate earlier.
func issuedAt(c *x509.Certificate) time.Time { return c.NotBefore.Add(Backdate) }

// lifetime is how long c is valid from its issue.
func lifetime(c *x509.Certificate) time.Duration {
	if l := c.NotAfter.Sub(issuedAt(c)); l > 0 {
		return l
	}
	return c.NotAfter.Sub(c.NotBefore)
}

// renewAt is when a third of c's lifetime remains.
func renewAt(c *x509.Certificate) time.Time { return c.NotAfter.Add(-lifetime(c) / 3) }

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func parsePEMCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// BundleString lists the subjects and serial numbers of a bundle, for logs.
func BundleString(bundle []*x509.Certificate) string {
	var s []string
	for _, c := range bundle {
		s = append(s, fmt.Sprintf("%s (serial %s)", c.Subject.CommonName, c.SerialNumber))
	}
	return strings.Join(s, ", ")
}
