package certs

import (
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func testSpec() Spec {
	return Spec{
		CommonName:   "bulwark-webhook",
		DNSNames:     ServiceNames("bulwark-webhook", "bulwark-system"),
		IPs:          []net.IP{net.IPv4(127, 0, 0, 1)},
		CertValidity: 90 * time.Second,
		CAValidity:   300 * time.Second,
		Propagation:  5 * time.Second,
	}
}

func TestServiceNamesAndHosts(t *testing.T) {
	want := []string{"bulwark-webhook.bulwark-system.svc", "bulwark-webhook.bulwark-system.svc.cluster.local", "bulwark-webhook.bulwark-system", "bulwark-webhook"}
	if diff := cmp.Diff(want, ServiceNames("bulwark-webhook", "bulwark-system")); diff != "" {
		t.Errorf("ServiceNames (-want +got):\n%s", diff)
	}
	dns, ips := SplitHosts([]string{"127.0.0.1", "webhook.example", "::1"})
	if diff := cmp.Diff([]string{"webhook.example"}, dns); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if len(ips) != 2 || !ips[0].Equal(net.IPv4(127, 0, 0, 1)) || !ips[1].Equal(net.IPv6loopback) {
		t.Errorf("IPs %v, want 127.0.0.1 and ::1", ips)
	}
}

// plan runs Plan and fails on an error.
func plan(t *testing.T, now time.Time, m Material, spec Spec, trusted time.Time) Decision {
	t.Helper()
	d, err := Plan(now, m, spec, trusted)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func serials(bundle []*x509.Certificate) []string {
	var s []string
	for _, c := range bundle {
		s = append(s, c.SerialNumber.String())
	}
	return s
}

// roundTrip renders m as Secret data and parses it back, as the Secret would.
func roundTrip(t *testing.T, m *Material) Material {
	t.Helper()
	data, err := m.Data()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse of Data: %v", err)
	}
	return back
}

func TestPlanFirstStartIssuesCAAndServingCertificate(t *testing.T) {
	spec := testSpec()
	empty, err := Parse(nil)
	for _, key := range []string{CABundleKey, CertKey} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Parse(nil) error %v does not name %s", err, key)
		}
	}
	d := plan(t, t0, empty, spec, time.Time{})
	if diff := cmp.Diff([]string{"no usable CA", "no usable serving certificate"}, d.Reasons); diff != "" {
		t.Errorf("reasons (-want +got):\n%s", diff)
	}
	m := roundTrip(t, d.Next)
	leaf := m.Serving.Leaf
	if diff := cmp.Diff(spec.DNSNames, leaf.DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IP SANs %v, want 127.0.0.1", leaf.IPAddresses)
	}
	if leaf.Subject.CommonName != "bulwark-webhook.bulwark-system.svc" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if !leaf.NotAfter.Equal(t0.Add(spec.CertValidity)) || !m.CA.Cert.NotAfter.Equal(t0.Add(spec.CAValidity)) {
		t.Errorf("serving certificate until %s, CA until %s; want %s and %s", leaf.NotAfter, m.CA.Cert.NotAfter, spec.CertValidity, spec.CAValidity)
	}
	if len(m.Bundle) != 1 || !m.Bundle[0].Equal(m.CA.Cert) {
		t.Errorf("bundle %v, want the CA alone", serials(m.Bundle))
	}
	// Renewal at two thirds of the serving certificate's lifetime.
	if want := t0.Add(60 * time.Second); !d.Recheck.Equal(want) {
		t.Errorf("recheck at %s, want %s", d.Recheck.Sub(t0), want.Sub(t0))
	}
	if _, err := m.ServingCertificate(t0); err != nil {
		t.Errorf("the issued certificate cannot be served: %v", err)
	}
	// Plan of its own result changes nothing.
	if again := plan(t, t0, m, spec, time.Time{}); again.Next != nil {
		t.Errorf("second Plan changed %v", again.Reasons)
	}
}

func TestPlanRenewsServingCertificateAtTwoThirds(t *testing.T) {
	spec := testSpec()
	m := roundTrip(t, plan(t, t0, Material{}, spec, time.Time{}).Next)
	if d := plan(t, t0.Add(59*time.Second), m, spec, t0); d.Next != nil {
		t.Errorf("renewed with more than a third left: %v", d.Reasons)
	}
	d := plan(t, t0.Add(60*time.Second), m, spec, t0)
	if diff := cmp.Diff([]string{"serving certificate due for renewal"}, d.Reasons); diff != "" {
		t.Fatalf("reasons (-want +got):\n%s", diff)
	}
	if d.Next.Serving.Leaf.SerialNumber.Cmp(m.Serving.Leaf.SerialNumber) == 0 {
		t.Error("same serial after renewal")
	}
	if diff := cmp.Diff(serials(m.Bundle), serials(d.Next.Bundle)); diff != "" {
		t.Errorf("bundle changed by a serving renewal (-before +after):\n%s", diff)
	}
}

// TestPlanCARotationNeverLeavesTheServedCertificateUntrusted simulates three CA
// lifetimes second by second: the leader plans and then injects the bundle; API
// servers see the webhook configurations apiLag late, replicas the Secret
// replicaLag late. At every second the certificate a replica serves must verify
// against the bundle an API server holds.
func TestPlanCARotationNeverLeavesTheServedCertificateUntrusted(t *testing.T) {
	spec := testSpec()
	const apiLag, replicaLag = 3 * time.Second, 2 * time.Second // apiLag < spec.Propagation
	type snapshot struct {
		at     time.Time
		bundle []*x509.Certificate
		leaf   *x509.Certificate
	}
	var secret, configs []snapshot
	seen := func(h []snapshot, at time.Time) snapshot {
		s := h[0]
		for _, x := range h {
			if !x.at.After(at) {
				s = x
			}
		}
		return s
	}
	var m Material
	var trusted time.Time
	var caRotations, servingRotations, bundles int
	for now := t0; now.Before(t0.Add(3 * spec.CAValidity)); now = now.Add(time.Second) {
		d := plan(t, now, m, spec, trusted)
		if d.Next != nil {
			next := roundTrip(t, d.Next)
			if m.CA != nil && !next.CA.Cert.Equal(m.CA.Cert) {
				caRotations++
				trusted = time.Time{}
			}
			if m.Serving != nil && !next.Serving.Leaf.Equal(m.Serving.Leaf) {
				servingRotations++
			}
			m = next
			secret = append(secret, snapshot{at: now, bundle: m.Bundle, leaf: m.Serving.Leaf})
		}
		if len(configs) == 0 || !slices.EqualFunc(configs[len(configs)-1].bundle, m.Bundle, (*x509.Certificate).Equal) {
			configs = append(configs, snapshot{at: now, bundle: m.Bundle})
			bundles++
		}
		if trusted.IsZero() {
			trusted = now
		}
		if d.Recheck.Before(now) {
			t.Fatalf("at %s: recheck %s lies in the past", now.Sub(t0), d.Recheck.Sub(t0))
		}
		if now.Before(t0.Add(apiLag + replicaLag)) {
			continue
		}
		served := seen(secret, now.Add(-replicaLag)).leaf
		if err := verifyServing(served, seen(configs, now.Add(-apiLag)).bundle, now); err != nil {
			t.Fatalf("at %s: the served certificate (serial %s) is not trusted by the API server: %v", now.Sub(t0), served.SerialNumber, err)
		}
	}
	// 900 s: CAs at 0, 200, 400, 600, 800 s; a serving certificate lasts at most 90 s.
	if caRotations != 4 || servingRotations < 9 {
		t.Errorf("%d CA and %d serving rotations, want 4 and at least 9", caRotations, servingRotations)
	}
	// Each CA rotation adds the new CA in front, then drops the old one.
	if bundles != 1+2*caRotations {
		t.Errorf("%d bundles, want %d", bundles, 1+2*caRotations)
	}
}

func TestPlanCARotationSteps(t *testing.T) {
	spec := testSpec()
	m := roundTrip(t, plan(t, t0, Material{}, spec, time.Time{}).Next)
	oldCA := m.CA.Cert
	// Keep the serving certificate fresh until the CA is due at 200 s.
	at := t0.Add(150 * time.Second)
	m = roundTrip(t, plan(t, at, m, spec, t0).Next)
	at = t0.Add(200 * time.Second)
	d := plan(t, at, m, spec, t0)
	if diff := cmp.Diff([]string{"CA due for renewal"}, d.Reasons); diff != "" {
		t.Fatalf("reasons (-want +got):\n%s", diff)
	}
	rotated := roundTrip(t, d.Next)
	if len(rotated.Bundle) != 2 || !rotated.Bundle[1].Equal(oldCA) || rotated.Bundle[0].Equal(oldCA) {
		t.Fatalf("bundle after CA rotation %v, want the new CA then %s", serials(rotated.Bundle), oldCA.SerialNumber)
	}
	if !rotated.Serving.Leaf.Equal(m.Serving.Leaf) {
		t.Error("serving certificate replaced before the API servers trust the new CA")
	}
	if want := at.Add(spec.Propagation); !d.Recheck.Equal(want) {
		t.Errorf("recheck at %s, want the end of propagation %s", d.Recheck.Sub(t0), want.Sub(t0))
	}
	// Injected at 201 s: not before 206 s.
	if d := plan(t, t0.Add(205*time.Second), rotated, spec, t0.Add(201*time.Second)); d.Next != nil {
		t.Errorf("replaced during propagation: %v", d.Reasons)
	}
	d = plan(t, t0.Add(206*time.Second), rotated, spec, t0.Add(201*time.Second))
	if diff := cmp.Diff([]string{"serving certificate signed by a previous CA"}, d.Reasons); diff != "" {
		t.Fatalf("reasons (-want +got):\n%s", diff)
	}
	switched := roundTrip(t, d.Next)
	if len(switched.Bundle) != 2 {
		t.Errorf("old CA dropped while a certificate it signed is valid: %v", serials(switched.Bundle))
	}
	// The old CA leaves the bundle once the serving certificate it signed has
	// been replaced for the propagation time: at 211 s.
	if d := plan(t, t0.Add(210*time.Second), switched, spec, t0.Add(201*time.Second)); d.Next != nil {
		t.Errorf("at 210 s: %v", d.Reasons)
	} else if want := t0.Add(211 * time.Second); !d.Recheck.Equal(want) {
		t.Errorf("recheck at %s, want %s", d.Recheck.Sub(t0), want.Sub(t0))
	}
	d = plan(t, t0.Add(211*time.Second), switched, spec, t0.Add(201*time.Second))
	if diff := cmp.Diff([]string{"previous CA no longer needed"}, d.Reasons); diff != "" {
		t.Fatalf("at 211 s, reasons (-want +got):\n%s", diff)
	}
	if got := roundTrip(t, d.Next).Bundle; len(got) != 1 || !got[0].Equal(switched.CA.Cert) {
		t.Errorf("bundle %v, want the new CA alone", serials(got))
	}
}

// TestSalvageRotatesGentlyAfterTheSecretIsDeleted: deleting the Secret forces a
// new CA, but the served certificate stays until the API servers trust it.
func TestSalvageRotatesGentlyAfterTheSecretIsDeleted(t *testing.T) {
	spec := testSpec()
	served := roundTrip(t, plan(t, t0, Material{}, spec, time.Time{}).Next)
	at := t0.Add(10 * time.Second)
	d := plan(t, at, Salvage(Material{}, served), spec, time.Time{})
	if diff := cmp.Diff([]string{"no usable CA"}, d.Reasons); diff != "" {
		t.Fatalf("reasons (-want +got):\n%s", diff)
	}
	next := roundTrip(t, d.Next)
	if next.CA.Cert.Equal(served.CA.Cert) || len(next.Bundle) != 2 || !next.Bundle[1].Equal(served.CA.Cert) {
		t.Errorf("bundle %v, want a new CA then the old one %s", serials(next.Bundle), served.CA.Cert.SerialNumber)
	}
	if !next.Serving.Leaf.Equal(served.Serving.Leaf) {
		t.Error("serving certificate replaced before the new CA propagated")
	}
	// A spoilt serving key is replaced from the Secret's own CA, at once.
	spoilt := served
	spoilt.Serving = nil
	d = plan(t, at, Salvage(spoilt, Material{}), spec, t0)
	if diff := cmp.Diff([]string{"no usable serving certificate"}, d.Reasons); diff != "" {
		t.Errorf("reasons (-want +got):\n%s", diff)
	}
}

func TestParseAndPlanReplaceInvalidContent(t *testing.T) {
	spec := testSpec()
	good, err := plan(t, t0, Material{}, spec, time.Time{}).Next.Data()
	if err != nil {
		t.Fatal(err)
	}
	other, err := plan(t, t0, Material{}, spec, time.Time{}).Next.Data()
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := good[CertKey]
	otherSpec := spec
	otherSpec.DNSNames = []string{"elsewhere.example"}
	renamed, err := plan(t, t0, Material{}, otherSpec, time.Time{}).Next.Data()
	if err != nil {
		t.Fatal(err)
	}
	with := func(edits map[string][]byte) map[string][]byte {
		d := map[string][]byte{}
		for k, v := range good {
			d[k] = v
		}
		for k, v := range edits {
			d[k] = v
		}
		return d
	}
	tests := map[string]struct {
		data        map[string][]byte
		parseErr    []string // substrings of Parse's error; none: no error
		keepCA      bool     // the CA survives
		keepServing bool
		reasons     []string
	}{
		"valid": {data: good, keepCA: true, keepServing: true},
		"garbage everywhere": {
			data:     map[string][]byte{CABundleKey: []byte("junk"), CAKeyKey: []byte("junk"), CertKey: []byte("junk"), KeyKey: []byte("junk")},
			parseErr: []string{"ca.crt: certificate 1 is not PEM", "ca.crt: no CA certificate", "tls.crt and tls.key"},
			reasons:  []string{"no usable CA", "no usable serving certificate"},
		},
		"ca.key of another CA": {
			data:        with(map[string][]byte{CAKeyKey: other[CAKeyKey]}),
			parseErr:    []string{"ca.key does not belong to the first certificate of ca.crt"},
			keepServing: true, // the old CA stays in the bundle: its certificate is still valid
			reasons:     []string{"no usable CA"},
		},
		"serving certificate as the CA": {
			data:     with(map[string][]byte{CABundleKey: leafPEM}),
			parseErr: []string{"is not a CA", "ca.crt: no CA certificate"},
			reasons:  []string{"no usable CA", "serving certificate expired or not signed by a CA of the bundle"},
		},
		"tls.key of another certificate": {
			data:     with(map[string][]byte{KeyKey: other[KeyKey]}),
			parseErr: []string{"tls.crt and tls.key: tls: private key does not match public key"},
			keepCA:   true,
			reasons:  []string{"no usable serving certificate"},
		},
		"serving certificate of another CA": {
			data:    with(map[string][]byte{CertKey: other[CertKey], KeyKey: other[KeyKey]}),
			keepCA:  true,
			reasons: []string{"serving certificate expired or not signed by a CA of the bundle"},
		},
		"serving certificate for other names": {
			data:    with(map[string][]byte{CABundleKey: renamed[CABundleKey], CAKeyKey: renamed[CAKeyKey], CertKey: renamed[CertKey], KeyKey: renamed[KeyKey]}),
			keepCA:  true,
			reasons: []string{"serving certificate names differ from the configured ones"},
		},
		"tls.key missing": {
			data:     with(map[string][]byte{KeyKey: nil}),
			parseErr: []string{"tls.crt and tls.key"},
			keepCA:   true,
			reasons:  []string{"no usable serving certificate"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(tc.data)
			if len(tc.parseErr) == 0 && err != nil {
				t.Errorf("Parse: %v", err)
			}
			for _, want := range tc.parseErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Parse error %v does not contain %q", err, want)
				}
			}
			d := plan(t, t0, m, spec, t0)
			if diff := cmp.Diff(tc.reasons, d.Reasons); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			if d.Next == nil {
				return
			}
			next := roundTrip(t, d.Next)
			if keptCA := m.CA != nil && next.CA.Cert.Equal(m.CA.Cert); keptCA != tc.keepCA {
				t.Errorf("CA kept: %v, want %v", keptCA, tc.keepCA)
			}
			if kept := m.Serving != nil && next.Serving.Leaf.Equal(m.Serving.Leaf); kept != tc.keepServing {
				t.Errorf("serving certificate kept: %v, want %v", kept, tc.keepServing)
			}
			if _, err := next.ServingCertificate(t0); err != nil && !tc.keepServing {
				t.Errorf("replacement cannot be served: %v", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	m, err := Plan(t0, Material{}, testSpec(), time.Time{})
	if err != nil {
		f.Fatal(err)
	}
	data, _ := m.Next.Data()
	f.Add(data[CABundleKey], data[CAKeyKey], data[CertKey], data[KeyKey])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte{}, []byte("x"), []byte{})
	f.Fuzz(func(t *testing.T, caCrt, caKey, crt, key []byte) {
		m, _ := Parse(map[string][]byte{CABundleKey: caCrt, CAKeyKey: caKey, CertKey: crt, KeyKey: key})
		// Whatever the Secret holds, Plan yields servable material.
		d, err := Plan(t0, m, testSpec(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		next := m
		if d.Next != nil {
			next = *d.Next
		}
		if next.CA == nil || next.Serving == nil {
			t.Fatal("Plan left no CA or serving certificate")
		}
	})
}

// TestPlanKeepsServingAValidCertificateOfOtherNamesUntilTheNewCAIsTrusted: a
// Secret written by another mode (cert-manager: a CA bundle and a serving
// certificate for other names, no CA key) gets a new CA, but the valid serving
// certificate is kept until the configurations have trusted the new CA for the
// propagation time; only then is it replaced, by one the new CA signed.
func TestPlanKeepsServingAValidCertificateOfOtherNamesUntilTheNewCAIsTrusted(t *testing.T) {
	spec := testSpec()
	other := spec
	other.DNSNames = []string{"bulwark-webhook.bulwark-system.svc"}
	foreign := roundTrip(t, plan(t, t0, Material{}, other, time.Time{}).Next)
	foreign.CA = nil // cert-manager keeps its CA's key elsewhere

	at := t0.Add(time.Second)
	d := plan(t, at, foreign, spec, time.Time{})
	if d.Next.CA == nil || d.Next.CA.Cert.Equal(foreign.Bundle[0]) {
		t.Fatal("no new CA")
	}
	if !d.Next.Serving.Leaf.Equal(foreign.Serving.Leaf) {
		t.Fatal("the valid serving certificate was replaced before the new CA was trusted")
	}
	if want := at.Add(spec.Propagation); !d.Recheck.Equal(want) {
		t.Errorf("Recheck %s, want %s (after the propagation time)", d.Recheck, want)
	}
	if got := serials(d.Next.Bundle); len(got) != 2 || got[0] != d.Next.CA.Cert.SerialNumber.String() {
		t.Errorf("bundle %v, want the new CA first, then the old one", got)
	}

	later := at.Add(spec.Propagation)
	d = plan(t, later, roundTrip(t, d.Next), spec, at)
	if leaf := d.Next.Serving.Leaf; leaf.Equal(foreign.Serving.Leaf) || !signedBy(leaf, d.Next.CA.Cert) || !sameNames(leaf, spec) {
		t.Errorf("after the propagation time: serving %v, want a new certificate for the configured names from the new CA", leaf.DNSNames)
	}
}
