package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulwark-dev/bulwark/api/v1alpha1"
	"github.com/bulwark-dev/bulwark/internal/image"
	"github.com/bulwark-dev/bulwark/tests/oci"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// The demo registry: an OCI registry over TLS on 127.0.0.1 serving a signed and
// an unsigned image, run by this program as its own process (`demo registry`).
const (
	registryDir     = ".demo/registry"
	registryLog     = ".demo/registry.log"
	registryInfo    = ".demo/registry/info.json"
	registryCAFile  = ".demo/registry/ca.pem"
	demoPolicyFile  = ".demo/policy.yaml"
	demoDBDir       = ".demo/db"
	demoSamplesDir  = ".demo/samples"
	registryTimeout = 30 * time.Second
)

// registryState is what the registry process writes once it serves.
type registryState struct {
	Host       string `json:"host"`
	Signed     string `json:"signed"`
	Unsigned   string `json:"unsigned"`
	Vulnerable string `json:"vulnerable"`
	Self       string `json:"self"`
	PublicKey  string `json:"publicKey"`
}

// demoVuln is the one vulnerability of the demo's database.
var demoVuln = vulndb.Vuln{ID: "CVE-2026-0001", Severity: "critical", CVSS: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
	Ecosystem: "apk", Distro: "alpine", Version: "3.20", Package: "openssl", Constraint: "< 3.3.2-r0", FixedIn: "3.3.2-r0"}

// fatalT lets the registry process use the test helpers of tests/oci: a helper
// that fails ends the process with its message.
type fatalT struct{ cleanups []func() }

func (*fatalT) Helper()                           {}
func (*fatalT) Fatal(args ...any)                 { fail(fmt.Sprint(args...)) }
func (*fatalT) Fatalf(format string, args ...any) { fail(fmt.Sprintf(format, args...)) }
func (t *fatalT) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bulwark demo registry:", msg)
	os.Exit(1)
}

// serveRegistry runs the demo registry until ctx ends: it pushes demo/signed:1.0
// (signed with a key generated here, as `cosign sign --key` does),
// demo/unsigned:1.0, demo/vulnerable:1.0 and bulwark's own webhook image built
// from webhookBin as `make image` builds it (signed), then writes registryInfo
// and the CA certificate.
func serveRegistry(ctx context.Context, webhookBin string) error {
	t := &fatalT{}
	defer func() {
		for i := len(t.cleanups) - 1; i >= 0; i-- {
			t.cleanups[i]()
		}
	}()
	reg := oci.NewRegistry(t)
	key := oci.NewKey(t)
	// Small Alpine-like images: the scanner catalogs them (random bytes name no
	// platform and hold no packages).
	signed := reg.Push(t, "demo/signed", "1.0", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "musl", Version: "1.2.5-r0"}))
	reg.Sign(t, signed, key)
	unsigned := reg.Push(t, "demo/unsigned", "1.0", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "zlib", Version: "1.3.1-r1"}))
	// Signed, but with a package the demo database knows a Critical CVE of.
	vulnerable := reg.Push(t, "demo/vulnerable", "1.0", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "openssl", Version: "3.3.1-r0"}))
	reg.Sign(t, vulnerable, key)
	// bulwark's own image: the webhook binary on the non-root base, without Docker.
	self, err := selfImage(webhookBin)
	if err != nil {
		return err
	}
	selfDigest := reg.Push(t, "demo/bulwark-webhook", "dev", self)
	reg.Sign(t, selfDigest, key)
	if err := os.MkdirAll(registryDir, 0o700); err != nil {
		return err
	}
	// A grype v6 database written with grype's own writer, for the scanner.
	vulndb.Write(t, demoDBDir, demoVuln)
	if err := os.WriteFile(registryCAFile, reg.CAPEM, 0o600); err != nil {
		return err
	}
	info, _ := json.MarshalIndent(registryState{Host: reg.Host, Signed: signed.String(), Unsigned: unsigned.String(), Vulnerable: vulnerable.String(), Self: selfDigest.String(), PublicKey: key.PublicPEM}, "", "  ")
	if err := os.WriteFile(registryInfo, append(info, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Printf("serving %s: %s (signed), %s (unsigned)\n", reg.Host, signed, unsigned)
	<-ctx.Done()
	return nil
}

// selfImage builds bulwark's webhook image from bin, as hack/image does for
// `make image`: the binary on internal/image's non-root base, with the OCI
// annotations that name the base by digest.
func selfImage(bin string) (v1.Image, error) {
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	base, err := image.StaticBase(certs)
	if err != nil {
		return nil, err
	}
	return image.Build(image.Options{
		Base: base, BaseName: "ghcr.io/bulwark-dev/bulwark-base:static-nonroot",
		Binaries:   map[string]string{"usr/local/bin/webhook": bin},
		Entrypoint: []string{"/usr/local/bin/webhook"},
		Title:      "bulwark webhook", Version: "demo", Source: "https://github.com/bulwark-dev/bulwark",
	})
}

// startRegistry starts `demo registry` in its own session and waits until it has
// written registryInfo.
func startRegistry(ctx context.Context, webhookBin string) (*registryState, int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	logFile, err := os.Create(registryLog)
	if err != nil {
		return nil, 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "registry", "--webhook", webhookBin)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start registry: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(registryTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(registryInfo); err == nil {
			var st registryState
			if err := json.Unmarshal(data, &st); err == nil && st.Host != "" {
				return &st, cmd.Process.Pid, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, cmd.Process.Pid, ctx.Err()
		case err := <-exited:
			return nil, 0, fmt.Errorf("registry exited: %v; see %s", err, registryLog)
		case <-deadline.C:
			return nil, cmd.Process.Pid, fmt.Errorf("registry not ready after %s; see %s", registryTimeout, registryLog)
		case <-tick.C:
		}
	}
}

// writeDemoPolicy writes the shipped policy with a trust rule for the demo
// registry: its images must carry the demo key's signature; other images match
// no rule and are allowed, so the shipped samples keep their outcomes.
func writeDemoPolicy(reg *registryState) error {
	base, err := os.ReadFile(policyFile)
	if err != nil {
		return err
	}
	policy := strings.Replace(string(base), `  signature:
    # Off until the operator writes trust rules (docs/policy.md#signature).
    enabled: false
    mode: enforce
    noMatch: deny
    rules: []
`, fmt.Sprintf(`  signature:
    # The demo trusts one key for the images of its registry.
    enabled: true
    mode: enforce
    noMatch: allow
    rules:
      - name: demo
        images: [%q]
        authorities:
          - name: demo-key
            key:
              pem: |
%s`, reg.Host+"/demo/**", indent(reg.PublicKey, "                ")), 1)
	policy = strings.Replace(policy, "  vulnerabilities:\n    # Off until a scanner and a vulnerability database are set up.\n    enabled: false\n",
		"  vulnerabilities:\n    # The demo runs the scanner inside the webhook with a database it wrote.\n    enabled: true\n", 1)
	policy = strings.Replace(policy, "    images: [\"**\"]\n    threshold:", fmt.Sprintf("    images: [%q]\n    threshold:", reg.Host+"/demo/**"), 1)
	policy = strings.Replace(policy, "registry:\n  allow: []\n  allowAddresses: []\n",
		fmt.Sprintf("registry:\n  allow: [%q]\n  allowAddresses: [127.0.0.1]\n", reg.Host), 1)
	if policy == string(base) || !strings.Contains(policy, reg.Host+"\"]\n  allowAddresses") || !strings.Contains(policy, "    enabled: true\n    mode: enforce\n    images: [\""+reg.Host) {
		return errors.New(policyFile + " no longer has the layout the demo edits (signature and registry sections)")
	}
	return os.WriteFile(demoPolicyFile, []byte(policy), 0o600)
}

// writeRegistrySamples writes the samples that use the demo registry's images.
func writeRegistrySamples(reg *registryState) error {
	if err := os.MkdirAll(demoSamplesDir, 0o700); err != nil {
		return err
	}
	samples := map[string]string{
		"08-pod-signed.yaml": fmt.Sprintf(`# Admitted: a Pod whose image carries a cosign signature by the demo key, verified
# by bulwark against the demo registry (%s).
apiVersion: v1
kind: Pod
metadata:
  name: signed
spec:
  containers:
    - name: app
      image: %s
`, reg.Host, reg.Signed),
		"09-pod-unsigned.yaml": fmt.Sprintf(`# Denied: a Pod whose image is pinned but not signed: ImageUnsigned.
apiVersion: v1
kind: Pod
metadata:
  name: unsigned
spec:
  containers:
    - name: app
      image: %s
`, reg.Unsigned),
	}
	samples["10-pod-vulnerable.yaml"] = fmt.Sprintf(`# Denied: a Pod whose image is signed but carries openssl with a Critical CVE that the
# scanner (grype, inside the webhook) found: ImageVulnerable.
apiVersion: v1
kind: Pod
metadata:
  name: vulnerable
spec:
  containers:
    - name: app
      image: %s
`, reg.Vulnerable)
	samples["11-pod-bulwark-itself.yaml"] = fmt.Sprintf(`# Admitted: bulwark's own webhook image — built from bin/webhook without a Docker daemon
# (internal/image, as `+"`make image`"+` does), pushed to the demo registry and signed with the
# demo key — passes bulwark's digest, signature and vulnerability checks.
apiVersion: v1
kind: Pod
metadata:
  name: bulwark-itself
spec:
  containers:
    - name: webhook
      image: %s
`, reg.Self)
	for name, body := range samples {
		if err := os.WriteFile(filepath.Join(demoSamplesDir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix + line)
	}
	return b.String()
}

// warmScans creates the ImageScans of the demo registry's images, as the
// webhook would at their first admission, and waits until the embedded scanner
// has completed them: a first scan includes the scanner's start-up, which could
// otherwise outlast the admission budget and show "scan in progress".
func warmScans(ctx context.Context, cfg *rest.Config, reg *registryState) error {
	cl, err := client.New(cfg, client.Options{Scheme: v1alpha1.NewScheme()})
	if err != nil {
		return err
	}
	var names []string
	for _, img := range []string{reg.Signed, reg.Unsigned, reg.Vulnerable, reg.Self} {
		d, err := name.NewDigest(img)
		if err != nil {
			return err
		}
		n, err := v1alpha1.NameFor(d.DigestStr())
		if err != nil {
			return err
		}
		is := &v1alpha1.ImageScan{ObjectMeta: metav1.ObjectMeta{Name: n}, Spec: v1alpha1.ImageScanSpec{Image: img}}
		if err := cl.Create(ctx, is); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ImageScan %s: %w", n, err)
		}
		names = append(names, n)
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			var is v1alpha1.ImageScan
			if err := cl.Get(ctx, client.ObjectKey{Name: n}, &is); err != nil {
				return false, nil
			}
			if is.Status.Phase != v1alpha1.ScanComplete && is.Status.Phase != v1alpha1.ScanFailed {
				return false, nil
			}
		}
		return true, nil
	})
}
