package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-dev/bulwark/tests/oci"
)

// The demo registry: an OCI registry over TLS on 127.0.0.1 serving a signed and
// an unsigned image, run by this program as its own process (`demo registry`).
const (
	registryDir     = ".demo/registry"
	registryLog     = ".demo/registry.log"
	registryInfo    = ".demo/registry/info.json"
	registryCAFile  = ".demo/registry/ca.pem"
	demoPolicyFile  = ".demo/policy.yaml"
	demoSamplesDir  = ".demo/samples"
	registryTimeout = 30 * time.Second
)

// registryState is what the registry process writes once it serves.
type registryState struct {
	Host      string `json:"host"`
	Signed    string `json:"signed"`
	Unsigned  string `json:"unsigned"`
	PublicKey string `json:"publicKey"`
}

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
// (signed with a key generated here, as `cosign sign --key` does) and
// demo/unsigned:1.0, then writes registryInfo and the CA certificate.
func serveRegistry(ctx context.Context) error {
	t := &fatalT{}
	defer func() {
		for i := len(t.cleanups) - 1; i >= 0; i-- {
			t.cleanups[i]()
		}
	}()
	reg := oci.NewRegistry(t)
	key := oci.NewKey(t)
	signed := reg.Push(t, "demo/signed", "1.0", oci.RandomImage(t))
	reg.Sign(t, signed, key)
	unsigned := reg.Push(t, "demo/unsigned", "1.0", oci.RandomImage(t))
	if err := os.MkdirAll(registryDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(registryCAFile, reg.CAPEM, 0o600); err != nil {
		return err
	}
	info, _ := json.MarshalIndent(registryState{Host: reg.Host, Signed: signed.String(), Unsigned: unsigned.String(), PublicKey: key.PublicPEM}, "", "  ")
	if err := os.WriteFile(registryInfo, append(info, '\n'), 0o600); err != nil {
		return err
	}
	fmt.Printf("serving %s: %s (signed), %s (unsigned)\n", reg.Host, signed, unsigned)
	<-ctx.Done()
	return nil
}

// startRegistry starts `demo registry` in its own session and waits until it has
// written registryInfo.
func startRegistry(ctx context.Context) (*registryState, int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	logFile, err := os.Create(registryLog)
	if err != nil {
		return nil, 0, err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "registry")
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
	policy = strings.Replace(policy, "registry:\n  allow: []\n  allowAddresses: []\n",
		fmt.Sprintf("registry:\n  allow: [%q]\n  allowAddresses: [127.0.0.1]\n", reg.Host), 1)
	if policy == string(base) || !strings.Contains(policy, reg.Host+"\"]\n  allowAddresses") {
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
