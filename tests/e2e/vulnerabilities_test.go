package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulwark-dev/bulwark/api/v1alpha1"
	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/worker"
	"github.com/bulwark-dev/bulwark/tests/cluster"
	"github.com/bulwark-dev/bulwark/tests/oci"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// The vulnerability database every scan here matches against, written by the
// test with grype's own v6 writer.
var testVulns = []vulndb.Vuln{
	{ID: "CVE-2026-0001", Severity: "critical", CVSS: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Ecosystem: "apk", Distro: "alpine", Version: "3.20",
		Package: "openssl", Constraint: "< 3.3.2-r0", FixedIn: "3.3.2-r0"},
	{ID: "CVE-2026-0002", Severity: "high", Ecosystem: "apk", Distro: "alpine", Version: "3.20",
		Package: "busybox", Constraint: "< 1.37.0-r0", FixedIn: "1.37.0-r0"},
	// Critical, and no fixed version exists: onlyFixed ignores it.
	{ID: "CVE-2026-0003", Severity: "critical", Ecosystem: "apk", Distro: "alpine", Version: "3.20",
		Package: "libunfixed", Constraint: "< 9.9.9-r0"},
}

var (
	vulnerableOpenSSL = vulndb.Package{Name: "openssl", Version: "3.3.1-r0"}
	oldBusybox        = vulndb.Package{Name: "busybox", Version: "1.36.1-r0"}
)

// vulnEnv is what the vulnerability tests share.
type vulnEnv struct {
	reg     *oci.Registry
	listing string    // where the scanner's database listing is published
	built   time.Time // build time of the first database
	label   map[string]string
	db      string
	kube    client.Client
}

// TestVulnerabilities runs bulwark with the vulnerabilities check on and its
// embedded scanner (Grype, on a database the test writes) as a webhook next to
// the default one, against images served by an in-process TLS registry.
func TestVulnerabilities(t *testing.T) {
	ve := &vulnEnv{reg: oci.NewRegistry(t), label: map[string]string{"bulwark.dev/e2e-vuln": "true"}}
	dir := t.TempDir()
	ve.db = filepath.Join(dir, "db")
	// Three days old: under the default maxDBAge (5 days), over a stricter one.
	built := time.Now().UTC().Truncate(time.Second).Add(-72 * time.Hour)
	vulndb.WriteBuilt(t, ve.db, built, testVulns...)
	// The scanner checks a listing (grype's distribution format) for newer
	// databases; it starts with the same one.
	listing := filepath.Join(dir, "listing")
	vulndb.Publish(t, ve.db, listing)
	dbServer := httptest.NewTLSServer(http.FileServer(http.Dir(listing)))
	t.Cleanup(dbServer.Close)
	ve.listing, ve.built = listing, built
	future := metav1.NewTime(time.Now().Add(30 * 24 * time.Hour))
	past := metav1.NewTime(time.Now().Add(-24 * time.Hour))
	p := policy.Defaults()
	p.Checks.Vulnerabilities.Enabled = true
	p.Checks.Vulnerabilities.Ignore = []policy.IgnoreRule{
		{ID: "CVE-2026-0001", Images: []string{ve.reg.Host + "/accepted/**"}, Reason: "TICKET-42: not reachable, fix in the next release", Expires: future},
		{ID: "CVE-2026-0001", Images: []string{ve.reg.Host + "/expired/**"}, Reason: "TICKET-7", Expires: past},
	}
	p.Registry.Allow = []string{ve.reg.Host, dbServer.Listener.Addr().String()}
	p.Registry.AllowAddresses = []string{"127.0.0.1"}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ve.reg.CAPEM)
	roots.AddCert(dbServer.Certificate())
	var err error
	if ve.kube, err = client.New(env.cluster.RESTConfig(cluster.Admin), client.Options{Scheme: v1alpha1.NewScheme()}); err != nil {
		t.Fatal(err)
	}
	killedScan, claimLapses := ve.killWorkerMidScan(t, &p, roots)
	w, err := startWebhook(t.Context(), filepath.Join(dir, "webhook"), env.cluster, &p, func(c *app.Config) {
		c.RegistryCAs = roots
		c.ShutdownTimeout = 10 * time.Second
		c.Scanner.DBDir, c.Scanner.Concurrency, c.Scanner.ClaimTTL = ve.db, 2, 6*time.Second
		c.Scanner.DBUpdateURL, c.Scanner.DBUpdateInterval = dbServer.URL, time.Second
		c.Scanner.Limits = scan.Limits{MaxUncompressedBytes: 64 << 20}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(); err != nil {
			t.Errorf("vulnerabilities webhook: %v", err)
		}
	})
	if err := env.cluster.InstallWebhookAs(t.Context(), webhookManifest, w.URL, env.cluster.CA.CertPEM, "bulwark-vuln", ve.label); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.cluster.UninstallWebhook(context.Background(), "bulwark-vuln") })

	t.Run("critical finding", ve.testCritical)
	t.Run("ignore rules and threshold", ve.testIgnoreAndThreshold)
	t.Run("scan slower than the budget", ve.testPending)
	t.Run("one scan for concurrent admissions and replicas", func(t *testing.T) { ve.testOneScan(t, &p, roots) })
	t.Run("onlyFixed", func(t *testing.T) { ve.testOnlyFixed(t, &p, roots) })
	t.Run("database older than maxDBAge", func(t *testing.T) { ve.testStaleDatabase(t, &p, roots) })
	t.Run("worker killed mid-scan", func(t *testing.T) { ve.testClaimExpiry(t, killedScan, claimLapses) })
	t.Run("scan limits", ve.testLimits)
	// Last: a newer database rescans every image.
	t.Run("new database finds a running image vulnerable", ve.testNewDatabase)
}

func (ve *vulnEnv) push(t *testing.T, repo string, img v1.Image) name.Digest {
	t.Helper()
	return ve.reg.Push(t, repo, "", img)
}

func (ve *vulnEnv) testCritical(t *testing.T) {
	ns := labeledNamespace(t, ve.label)
	d := ve.push(t, "team/web", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulnerableOpenSSL))
	_, err := createPod(t, ns, "vulnerable", d.String())
	wantDenied(t, err, "image has a known vulnerability (check vulnerabilities)", "CVE-2026-0001 (Critical, CVSS 9.8) in openssl 3.3.1-r0 (apk) → fixed in 3.3.2-r0",
		"bulwark.dev/exempt: vulnerabilities:CVE-2026-0001")

	// kubectl get imagescans shows the scan.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.cluster.WriteKubeconfig(kubeconfig, cluster.Admin); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), filepath.Join(env.cluster.Assets, "kubectl"), "--kubeconfig", kubeconfig, "get", "imagescans").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get imagescans: %v\n%s", err, out)
	}
	scanName, _ := v1alpha1.NameFor(d.DigestStr())
	var row string
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, scanName) {
			row = line
		}
	}
	for _, want := range []string{"IMAGE", "PHASE", "CRITICAL", "HIGH", "DB"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl get imagescans has no column %s:\n%s", want, out)
		}
	}
	// One ImageScan per digest, cluster-wide: the same image pushed to another
	// repository earlier shares it.
	if f := strings.Fields(row); len(f) < 5 || !strings.HasSuffix(f[1], "@"+d.DigestStr()) || f[2] != "Complete" || f[3] != "1" || f[4] != "0" {
		t.Errorf("kubectl get imagescans row for %s = %q, want its digest, Complete, 1 critical, 0 high\n%s", d, row, out)
	}
}

func (ve *vulnEnv) testIgnoreAndThreshold(t *testing.T) {
	ns := labeledNamespace(t, ve.label)
	accepted := ve.push(t, "accepted/web", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulnerableOpenSSL))
	if _, err := createPod(t, ns, "accepted", accepted.String()); err != nil {
		t.Fatalf("critical finding under an ignore rule with a future expiry: %v", err)
	}
	waitForNote(t, ns, "accepted", "PolicyExempted", "CVE-2026-0001")

	expired := ve.push(t, "expired/web", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulnerableOpenSSL))
	_, err := createPod(t, ns, "expired", expired.String())
	wantDenied(t, err, "CVE-2026-0001", "the ignore rule for it expired")

	highOnly := ve.push(t, "team/tools", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", oldBusybox))
	if _, err := createPod(t, ns, "high-only", highOnly.String()); err != nil {
		t.Fatalf("only a High finding, threshold Critical: %v", err)
	}
}

// waitForNote waits for an Event with reason about the object name whose note
// contains part.
func waitForNote(t *testing.T, ns, name, reason, part string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := env.admin.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == reason && e.Regarding.Name == name && strings.Contains(e.Note, part) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s Event about %s mentioning %q: %v", reason, name, part, err)
	}
}

func (ve *vulnEnv) testPending(t *testing.T) {
	ns := labeledNamespace(t, ve.label)
	img := vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "musl", Version: "1.2.5-r0"})
	d := ve.push(t, "slow/app", img)
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()
	release := make(chan struct{})
	var released atomic.Bool
	ve.reg.HoldBody("/v2/slow/app/blobs/"+layerDigest.String(), release)
	defer func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}()
	start := time.Now()
	_, err := createPod(t, ns, "slow", d.String())
	t.Logf("a scan slower than the budget: answered in %v", time.Since(start))
	wantDenied(t, err, "scan in progress (check vulnerabilities)", "retry in about")

	if released.CompareAndSwap(false, true) {
		close(release)
	}
	ve.waitForScan(t, d, v1alpha1.ScanComplete)
	if _, err := createPod(t, ns, "slow", d.String()); err != nil {
		t.Fatalf("retried once the scan completed: %v", err)
	}
}

// waitForScan waits until the ImageScan of d reaches phase.
func (ve *vulnEnv) waitForScan(t *testing.T, d name.Digest, phase v1alpha1.ScanPhase) *v1alpha1.ImageScan {
	t.Helper()
	n, _ := v1alpha1.NameFor(d.DigestStr())
	var is v1alpha1.ImageScan
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := ve.kube.Get(ctx, client.ObjectKey{Name: n}, &is); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return is.Status.Phase == phase, nil
	})
	if err != nil {
		t.Fatalf("ImageScan %s did not reach %s (status %+v): %v", n, phase, is.Status, err)
	}
	return &is
}

func (ve *vulnEnv) testOneScan(t *testing.T, p *policy.Policy, roots *x509.CertPool) {
	ns := labeledNamespace(t, ve.label)
	img := vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "zlib", Version: "1.3.1-r1"})
	d := ve.push(t, "burst/app", img)
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()
	layerPath := "/v2/burst/app/blobs/" + layerDigest.String()
	before := ve.reg.Count(http.MethodGet, layerPath)
	admitConcurrently(t, ns, d.String(), 100)
	if n := ve.reg.Count(http.MethodGet, layerPath) - before; n != 1 {
		t.Errorf("100 concurrent admissions of one new digest read its layer %d times, want 1 (one scan)", n)
	}
	is := ve.waitForScan(t, d, v1alpha1.ScanComplete)
	if is.Status.Attempts != 1 {
		t.Errorf("the ImageScan was claimed %d times, want 1", is.Status.Attempts)
	}

	// A second webhook process without a scanner of its own, sharing the API
	// server, decides the same digest from the ImageScan.
	second := map[string]string{"bulwark.dev/e2e-vuln-second": "true"}
	w2, err := startWebhook(t.Context(), filepath.Join(t.TempDir(), "webhook"), env.cluster, p, func(c *app.Config) {
		c.RegistryCAs = roots
		c.ShutdownTimeout = 10 * time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w2.Stop(); err != nil {
			t.Errorf("second webhook: %v", err)
		}
	}()
	if err := env.cluster.InstallWebhookAs(t.Context(), webhookManifest, w2.URL, env.cluster.CA.CertPEM, "bulwark-vuln-second", second); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.cluster.UninstallWebhook(context.Background(), "bulwark-vuln-second") }()
	ns2 := labeledNamespace(t, second)
	requests := len(ve.reg.Served())
	if _, err := createPod(t, ns2, "same-digest", d.String()); err != nil {
		t.Fatalf("second webhook, digest scanned before: %v", err)
	}
	if n := len(ve.reg.Served()) - requests; n != 0 {
		t.Errorf("the second webhook made %d registry requests, want 0", n)
	}
}

// testStaleDatabase: a webhook whose policy trusts databases for 48 hours
// decides a digest scanned with the three-day-old database by staleDB (deny),
// saying how old the database is; the first webhook (default 120 hours) admits it.
func (ve *vulnEnv) testStaleDatabase(t *testing.T, p *policy.Policy, roots *x509.CertPool) {
	ns := labeledNamespace(t, ve.label)
	d := ve.push(t, "stale/app", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "musl", Version: "1.2.5-r0"}))
	if _, err := createPod(t, ns, "fresh-enough", d.String()); err != nil {
		t.Fatalf("under the default maxDBAge: %v", err)
	}
	strict := *p
	strict.Checks.Vulnerabilities.MaxDBAge = metav1.Duration{Duration: 48 * time.Hour}
	strict.Checks.Vulnerabilities.StaleDB = policy.OutcomeDeny
	_, err := createPod(t, ve.otherWebhook(t, "stale", &strict, roots), "stale", d.String())
	wantDenied(t, err, "vulnerability database too old (check vulnerabilities)", d.String(),
		"built 72h0m0s ago, more than checks.vulnerabilities.maxDBAge 48h0m0s")
}

// testOnlyFixed: a Critical finding without a fixed version denies the image,
// unless the policy says onlyFixed; a fixable one still denies it then.
func (ve *vulnEnv) testOnlyFixed(t *testing.T, p *policy.Policy, roots *x509.CertPool) {
	unfixed := ve.push(t, "unfixed/app", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "libunfixed", Version: "1.0.0-r0"}))
	_, err := createPod(t, labeledNamespace(t, ve.label), "unfixed", unfixed.String())
	wantDenied(t, err, "image has a known vulnerability (check vulnerabilities)", "CVE-2026-0003 (Critical) in libunfixed 1.0.0-r0 (apk)")

	onlyFixed := *p
	onlyFixed.Checks.Vulnerabilities.OnlyFixed = true
	ns := ve.otherWebhook(t, "only-fixed", &onlyFixed, roots)
	if _, err := createPod(t, ns, "unfixed", unfixed.String()); err != nil {
		t.Errorf("onlyFixed, Critical finding without a fix: %v; want admitted", err)
	}
	fixable := ve.push(t, "unfixed/app", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulnerableOpenSSL, vulndb.Package{Name: "libunfixed", Version: "1.0.0-r0"}))
	_, err = createPod(t, ns, "fixable", fixable.String())
	wantDenied(t, err, "CVE-2026-0001 (Critical, CVSS 9.8) in openssl 3.3.1-r0 (apk) → fixed in 3.3.2-r0")
}

// otherWebhook runs a webhook without a scanner of its own under policy p, which
// decides from the ImageScans the first one's scanner completes, on namespaces
// labelled for it, and returns such a namespace. It stops when t ends.
func (ve *vulnEnv) otherWebhook(t *testing.T, name string, p *policy.Policy, roots *x509.CertPool) string {
	t.Helper()
	label := map[string]string{"bulwark.dev/e2e-vuln-" + name: "true"}
	w, err := startWebhook(t.Context(), filepath.Join(t.TempDir(), "webhook"), env.cluster, p, func(c *app.Config) {
		c.RegistryCAs = roots
		c.ShutdownTimeout = 10 * time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(); err != nil {
			t.Errorf("%s webhook: %v", name, err)
		}
	})
	if err := env.cluster.InstallWebhookAs(t.Context(), webhookManifest, w.URL, env.cluster.CA.CertPEM, "bulwark-vuln-"+name, label); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.cluster.UninstallWebhook(context.Background(), "bulwark-vuln-"+name) })
	return labeledNamespace(t, label)
}

// blockingScanner never finishes a scan: the worker running it is killed
// mid-scan.
type blockingScanner struct{ started chan struct{} }

func (b blockingScanner) Scan(ctx context.Context, _ scan.Request) (*scan.Report, error) {
	close(b.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

// killWorkerMidScan creates the ImageScan of a new image, lets a real worker
// (with a scanner that never finishes) claim it, and kills that worker, leaving
// its claim to lapse. It runs before the webhook and its embedded worker start,
// so nothing races the first claim.
func (ve *vulnEnv) killWorkerMidScan(t *testing.T, p *policy.Policy, roots *x509.CertPool) (name.Digest, time.Time) {
	t.Helper()
	d := ve.push(t, "claims/app", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulnerableOpenSSL))
	n, _ := v1alpha1.NameFor(d.DigestStr())
	if err := ve.kube.Create(t.Context(), &v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: n}, Spec: v1alpha1.ImageScanSpec{Image: d.String()}}); err != nil {
		t.Fatal(err)
	}
	rc, err := registry.New(registry.Options{Allow: p.Registry.Allow, AllowAddresses: p.Registry.Prefixes(), RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	dying := blockingScanner{started: make(chan struct{})}
	wa, err := worker.New(env.cluster.RESTConfig(cluster.Bulwark), worker.Options{Scanner: dying, Registry: rc, ID: "worker-killed", ClaimTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- wa.Run(ctx) }()
	select {
	case <-dying.started:
	case err := <-done:
		t.Fatalf("worker ended before scanning: %v", err)
	}
	kill()
	<-done
	var is v1alpha1.ImageScan
	if err := ve.kube.Get(t.Context(), client.ObjectKey{Name: n}, &is); err != nil {
		t.Fatal(err)
	}
	if is.Status.ClaimedBy != "worker-killed" || is.Status.Phase != v1alpha1.ScanScanning {
		t.Fatalf("after the kill: claimed by %q, phase %s; want worker-killed, Scanning", is.Status.ClaimedBy, is.Status.Phase)
	}
	return d, is.Status.ClaimExpires.Time
}

// testClaimExpiry: the scan the killed worker held is finished by another
// worker — the webhook's embedded one — once the claim lapses.
func (ve *vulnEnv) testClaimExpiry(t *testing.T, d name.Digest, lapses time.Time) {
	done := ve.waitForScan(t, d, v1alpha1.ScanComplete)
	if done.Status.Attempts != 2 || done.Status.ClaimedBy != "" || done.Status.Counts.Critical != 1 || done.Status.ScannedAt.Time.Before(lapses) {
		t.Errorf("after the lapsed claim: attempts %d, claimedBy %q, critical %d, scanned at %v; want 2, none, 1, after %v",
			done.Status.Attempts, done.Status.ClaimedBy, done.Status.Counts.Critical, done.Status.ScannedAt, lapses)
	}
}

func (ve *vulnEnv) testLimits(t *testing.T) {
	ns := labeledNamespace(t, ve.label)
	bomb := ve.push(t, "limits/bomb", vulndb.Image(t, vulndb.AMD64, vulndb.GzipBomb(t, 1<<30)))
	_, err := createPod(t, ns, "bomb", bomb.String())
	wantDenied(t, err, "image could not be scanned (check vulnerabilities)", "exceeds scan limits", "ExceedsScanLimits")
	is := ve.waitForScan(t, bomb, v1alpha1.ScanFailed)
	if is.Status.Reason != "ExceedsScanLimits" {
		t.Errorf("ImageScan reason %q, want ExceedsScanLimits", is.Status.Reason)
	}
}

// testNewDatabase: a pod runs an image the first database finds clean; a newer
// database, published to the listing the scanner polls, knows a Critical CVE in
// it: the scanner swaps the database, rescans, updates the ImageScan, and warns
// about the running pod with an Event (it is not evicted).
func (ve *vulnEnv) testNewDatabase(t *testing.T) {
	ns := labeledNamespace(t, ve.label)
	d := ve.push(t, "running/app", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "xz-libs", Version: "5.6.1-r0"}))
	if _, err := createPod(t, ns, "running", d.String()); err != nil {
		t.Fatalf("clean under the first database: %v", err)
	}
	// Admissions go on while the scanner swaps the database: a digest scanned
	// before, and new digests scanned around the swap. None may fail.
	clean := ve.push(t, "swap/app", vulndb.Alpine(t, vulndb.AMD64, "3.20.3"))
	if _, err := createPod(t, ns, "swap-warm", clean.String()); err != nil {
		t.Fatalf("clean image: %v", err)
	}
	var fresh []name.Digest
	for i := range 6 {
		fresh = append(fresh, ve.push(t, "swap/app", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "swap-app", Version: fmt.Sprintf("1.0.%d-r0", i)})))
	}
	stop, done := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); <-done }
	t.Cleanup(halt) // also when the test fails before the swap is seen
	var admitted atomic.Int64
	var failures []error
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			image := clean
			if i%4 == 3 && len(fresh) > 0 {
				image, fresh = fresh[0], fresh[1:]
			}
			pod := podOf(fmt.Sprintf("swap-%d", i), ctr("app", image.String()))
			if _, err := env.admin.CoreV1().Pods(ns).Create(context.WithoutCancel(t.Context()), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				failures = append(failures, err)
			} else {
				admitted.Add(1)
			}
		}
	}()
	newer := filepath.Join(t.TempDir(), "db")
	vulndb.WriteBuilt(t, newer, ve.built.Add(time.Hour), append(testVulns, vulndb.Vuln{ID: "CVE-2026-0009", Severity: "critical",
		Ecosystem: "apk", Distro: "alpine", Version: "3.20", Package: "xz-libs", Constraint: "< 5.6.2-r0", FixedIn: "5.6.2-r0"})...)
	vulndb.Publish(t, newer, ve.listing)
	waitForNote(t, ns, "running", "ImageVulnerable", "CVE-2026-0009")
	halt()
	if len(failures) > 0 || admitted.Load() < 10 {
		t.Errorf("admissions during the database swap: %d admitted, %d failed (want at least 10, 0): %v", admitted.Load(), len(failures), failures)
	}
	t.Logf("admissions during the database swap: %d admitted, 0 failed", admitted.Load())
	is := ve.waitForScan(t, d, v1alpha1.ScanComplete)
	if is.Status.Counts.Critical != 1 || !is.Status.DBBuilt.Equal(&metav1.Time{Time: ve.built.Add(time.Hour)}) {
		t.Errorf("ImageScan after the new database: critical %d, database %v; want 1, %v", is.Status.Counts.Critical, is.Status.DBBuilt, ve.built.Add(time.Hour))
	}
	if _, err := env.admin.CoreV1().Pods(ns).Get(t.Context(), "running", metav1.GetOptions{}); err != nil {
		t.Errorf("the running pod is gone: %v", err)
	}
}
