package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-dev/bulwark/api/v1alpha1"
	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/tests/cluster"
	"github.com/bulwark-dev/bulwark/tests/oci"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// BenchmarkCachedAdmission measures admissions of a digest whose scan is
// complete — dry-run pod creates through the API server, decided from the
// ImageScan in the webhook's informer cache — first with the scanner idle, then
// while it inflates gzip bombs until the scan limits stop them (two at a time).
// It reports the admission latency percentiles, the bombs refused during the
// measurement, and the webhook process's peak Go heap. Two topologies:
//
//   - embedded: the scanner runs inside the webhook's process (--scanner-db-dir,
//     small clusters), sharing its CPU and heap: the worst case;
//   - separate process: cmd/scanner as its own process, as the scanner
//     Deployment runs, at the lowest CPU priority (nice 19) as a stand-in for the
//     CPU share its pods get on a node it shares with the webhook.
//
// Everything (kube-apiserver, etcd, webhook, registry, scanner) shares this
// machine's cores; docs/benchmarks.md has the figures.
//
//	go test -run '^$' -bench CachedAdmission -benchtime 400x ./tests/e2e/
func BenchmarkCachedAdmission(b *testing.B) {
	b.Run("embedded", func(b *testing.B) { benchCachedAdmission(b, false) })
	b.Run("separate process", func(b *testing.B) { benchCachedAdmission(b, true) })
}

func benchCachedAdmission(b *testing.B, external bool) {
	reg := oci.NewRegistry(b)
	dir := b.TempDir()
	dbDir := filepath.Join(dir, "db")
	vulndb.Write(b, dbDir, testVulns...)
	p := policy.Defaults()
	p.Checks.Vulnerabilities.Enabled = true
	p.Registry.Allow = []string{reg.Host}
	p.Registry.AllowAddresses = []string{"127.0.0.1"}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(reg.CAPEM)
	limits := scan.Limits{MaxUncompressedBytes: 64 << 20}
	if external {
		startScannerProcess(b, dir, &p, reg.CAPEM, dbDir, limits)
	}
	w, err := startWebhook(b.Context(), filepath.Join(dir, "webhook"), env.cluster, &p, func(c *app.Config) {
		c.RegistryCAs = roots
		if !external {
			c.Scanner.DBDir, c.Scanner.Concurrency, c.Scanner.Limits = dbDir, 2, limits
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = w.Stop() })
	label := map[string]string{"bulwark.dev/e2e-bench": "true"}
	if err := env.cluster.InstallWebhookAs(b.Context(), webhookManifest, w.URL, env.cluster.CA.CertPEM, "bulwark-bench", label); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = env.cluster.UninstallWebhook(context.Background(), "bulwark-bench") })
	kube, err := client.New(env.cluster.RESTConfig(cluster.Admin), client.Options{Scheme: v1alpha1.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	ns := labeledNamespace(b, label)
	waitForDefaultServiceAccount(b, ns)

	clean := reg.Push(b, "bench/app", "", vulndb.Alpine(b, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "bench", Version: fmt.Sprint(external)}))
	admit := func(ctx context.Context, image string) error {
		pod := podOf("bench", ctr("app", image))
		_, err := env.admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	// The first admission creates the scan and waits for it.
	if err := wait.PollUntilContextTimeout(b.Context(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return admit(ctx, clean.String()) == nil, nil
	}); err != nil {
		b.Fatalf("the clean image was never admitted: %v", err)
	}

	// Bombs: each a 1 GiB gzip bomb plus a random layer, so each is a new digest.
	bomb := vulndb.GzipBomb(b, 1<<30)
	var bombs []name.Digest
	for range 60 {
		extra, err := random.Layer(64, types.OCILayer)
		if err != nil {
			b.Fatal(err)
		}
		bombs = append(bombs, reg.Push(b, "bench/bomb", "", vulndb.Image(b, vulndb.AMD64, bomb, extra)))
	}

	measure := func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			if err := admit(b.Context(), clean.String()); err != nil {
				b.Fatalf("cached admission: %v", err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	failed := func() int {
		n := 0
		for _, d := range bombs {
			var is v1alpha1.ImageScan
			scanName, _ := v1alpha1.NameFor(d.DigestStr())
			if kube.Get(context.Background(), client.ObjectKey{Name: scanName}, &is) == nil && is.Status.Phase == v1alpha1.ScanFailed {
				n++
			}
		}
		return n
	}

	b.Run("scanner idle", measure)
	b.Run("scanner inflating gzip bombs", func(b *testing.B) {
		// Queue every bomb's ImageScan, as admissions of 60 new images would; they
		// go when the benchmark ends, so the next topology starts idle.
		for _, d := range bombs {
			scanName, _ := v1alpha1.NameFor(d.DigestStr())
			is := &v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: scanName}, Spec: v1alpha1.ImageScanSpec{Image: d.Context().Name() + "@" + d.DigestStr()}}
			if err := kube.Create(b.Context(), is); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = kube.Delete(context.Background(), is) })
		}
		var peak atomic.Uint64
		stop := make(chan struct{})
		go func() {
			sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				metrics.Read(sample)
				if v := sample[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}()
		before := failed()
		measure(b)
		close(stop)
		refused := failed() - before
		b.ReportMetric(float64(refused), "bombs-refused")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		if refused == 0 {
			b.Error("no bomb was refused while admissions were measured: the scanner was not busy")
		}
		fmt.Fprintf(b.Output(), "bombs refused during the measurement: %d of %d\n", refused, len(bombs))
	})
}

// startScannerProcess runs cmd/scanner, built here, as its own process at the
// lowest CPU priority, with the webhook's identity and policy.
func startScannerProcess(b *testing.B, dir string, p *policy.Policy, caPEM []byte, dbDir string, l scan.Limits) {
	bin := filepath.Join(dir, "scanner")
	if out, err := exec.CommandContext(b.Context(), "go", "build", "-o", bin, "github.com/bulwark-dev/bulwark/cmd/scanner").CombinedOutput(); err != nil {
		b.Fatalf("build cmd/scanner: %v\n%s", err, out)
	}
	policyYAML, err := yaml.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{"policy.yaml": policyYAML, "registry-ca.pem": caPEM}
	for f, data := range files {
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.cluster.WriteKubeconfig(kubeconfig, cluster.Bulwark); err != nil {
		b.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "scanner.log"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "nice", "-n", "19", bin, "--kubeconfig", kubeconfig,
		"--policy", filepath.Join(dir, "policy.yaml"), "--registry-ca-file", filepath.Join(dir, "registry-ca.pem"),
		"--db-dir", dbDir, "--metrics-bind-address", "", "--concurrency", "2", "--id", "bench-scanner",
		"--max-uncompressed-bytes", fmt.Sprint(l.MaxUncompressedBytes))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stop(); _ = cmd.Wait(); logFile.Close() })
}
