package grype_test

import (
	"io"
	"net/http"
	"path"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/tests/oci"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// The vulnerabilities the tests' databases hold.
var (
	criticalApk = vulndb.Vuln{
		ID: "CVE-2024-0001", Severity: "critical", CVSS: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		Ecosystem: "apk", Distro: "alpine", Version: "3.20", Package: "libcrypto3",
		Constraint: "< 3.3.2-r0", FixedIn: "3.3.2-r0",
	}
	// The image has libssl3 3.3.2-r0: fixed.
	fixedApk = vulndb.Vuln{
		ID: "CVE-2024-0002", Severity: "high", CVSS: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
		Ecosystem: "apk", Distro: "alpine", Version: "3.20", Package: "libssl3",
		Constraint: "< 3.3.2-r0", FixedIn: "3.3.2-r0",
	}
	highDeb = vulndb.Vuln{
		ID: "CVE-2024-0003", Severity: "high", CVSS: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
		Ecosystem: "deb", Distro: "debian", Version: "12", Package: "openssl",
		Constraint: "< 3.0.13-1~deb12u1", FixedIn: "3.0.13-1~deb12u1",
	}
	unfixedDeb = vulndb.Vuln{
		ID: "CVE-2024-0004", Severity: "medium",
		Ecosystem: "deb", Distro: "debian", Version: "12", Package: "libc6",
		Constraint: "< 2.37", // no fix yet
	}
	allVulns = []vulndb.Vuln{criticalApk, fixedApk, highDeb, unfixedDeb}

	alpinePkgs = []vulndb.Package{{Name: "libcrypto3", Version: "3.3.1-r0"}, {Name: "libssl3", Version: "3.3.2-r0"}, {Name: "musl", Version: "1.2.5-r0"}}
	debianPkgs = []vulndb.Package{{Name: "openssl", Version: "3.0.11-1~deb12u2"}, {Name: "libc6", Version: "2.36-9+deb12u7"}}
)

// env is a registry with a guarded client to it and a scanner on a database.
type env struct {
	reg     *oci.Registry
	client  *registry.Client
	db      *grype.DB
	scanner *grype.Scanner
	metrics *prometheus.Registry
}

// newEnv opens the database in dbDir (vulndb.Write) with o and starts a
// registry.
func newEnv(t testing.TB, dbDir string, o grype.DBOptions) *env {
	t.Helper()
	e := &env{reg: oci.NewRegistry(t), metrics: prometheus.NewRegistry()}
	e.client = e.reg.Client(t, registry.Options{})
	var err error
	o.Metrics = e.metrics
	if e.db, err = grype.OpenDB(dbDir, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	if e.scanner, err = grype.New(grype.Options{DB: e.db, Metrics: e.metrics}); err != nil {
		t.Fatal(err)
	}
	return e
}

// request scans image through the guarded client, anonymously.
func (e *env) request(t testing.TB, image name.Digest) scan.Request {
	return scan.Request{Image: image, Remote: e.client.RemoteOptions(t.Context(), nil)}
}

// blobReads counts the bytes a client read from blob response bodies.
type blobReads struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (b *blobReads) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	if err == nil && path.Base(path.Dir(req.URL.Path)) == "blobs" {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &b.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// withBlobReads makes req's registry reads go through the guarded transport
// wrapped by a counter (the last transport option wins).
func (e *env) withBlobReads(req scan.Request) (scan.Request, *blobReads) {
	counter := &blobReads{next: e.client.Transport()}
	req.Remote = append(req.Remote, remote.WithTransport(counter))
	return req, counter
}

// metric returns the value of the gauge or counter name whose labels include
// each of labels ("key=value"), 0 if there is none.
func (e *env) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	families, err := e.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			have := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				have = append(have, l.GetName()+"="+l.GetValue())
			}
			if !slices.ContainsFunc(labels, func(l string) bool { return !slices.Contains(have, l) }) {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
