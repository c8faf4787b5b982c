package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/bulwark-dev/bulwark/certs"
	"github.com/bulwark-dev/bulwark/internal/wire"
	"github.com/bulwark-dev/bulwark/pkg/policy"
)

func writeServing(t *testing.T, dir string) (*certs.CA, string, string) {
	t.Helper()
	ca, err := certs.NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueServing("bulwark", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := kp.WriteFiles(dir, "tls")
	if err != nil {
		t.Fatal(err)
	}
	return ca, certFile, keyFile
}

func TestOptionsConfigErrorsNameTheFlagAndField(t *testing.T) {
	dir := t.TempDir()
	_, certFile, keyFile := writeServing(t, dir)
	badPolicy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(badPolicy, []byte("apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nchecks:\n  digest:\n    mode: block\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		edit func(o *Options)
		want []string
	}{
		"invalid policy field": {
			edit: func(o *Options) { o.PolicyFile = badPolicy },
			want: []string{"--policy " + badPolicy, `checks.digest.mode: Unsupported value: "block"`},
		},
		"missing policy file": {
			edit: func(o *Options) { o.PolicyFile = filepath.Join(dir, "absent.yaml") },
			want: []string{"--policy", "no such file"},
		},
		"missing certificate and bad address": {
			edit: func(o *Options) {
				o.CertFile = filepath.Join(dir, "absent.crt")
				o.BindAddress = "8443"
			},
			want: []string{"--tls-cert-file", "--bind-address"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := NewOptions()
			o.CertFile, o.KeyFile = certFile, keyFile
			o.PolicyFile = "../../../deploy/base/policy.yaml"
			tc.edit(o)
			_, err := o.Config()
			if err == nil {
				t.Fatal("Config accepted invalid options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestShippedPolicyIsTheDefaults(t *testing.T) {
	o := NewOptions()
	o.PolicyFile = "../../../deploy/base/policy.yaml"
	p, err := wire.LoadPolicy(o.PolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*p, policy.Defaults()) {
		t.Errorf("deploy/base/policy.yaml = %+v, want the documented defaults %+v", *p, policy.Defaults())
	}
}

// startServer runs the real server on 127.0.0.1 and returns its address and a
// client trusting ca.
func startServer(t *testing.T, certFile, keyFile string) (string, context.CancelFunc, chan error) {
	t.Helper()
	p := policy.Defaults()
	cfg := &Config{BindAddress: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, CertReload: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Policy: &p}
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), logr.Discard()))
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, ready) }()
	select {
	case addr := <-ready:
		t.Cleanup(func() {
			cancel()
			<-done
		})
		return addr.String(), cancel, done
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return "", nil, nil
}

func client(ca *certs.CA, tlsCfg *tls.Config) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	tlsCfg.RootCAs = pool
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServerEndpointsAndTLS(t *testing.T) {
	dir := t.TempDir()
	ca, certFile, keyFile := writeServing(t, dir)
	addr, _, _ := startServer(t, certFile, keyFile)
	base := "https://" + addr
	c := client(ca, nil)

	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := get(t, c, base+path); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	resp, _ := get(t, c, base+"/healthz")
	if resp.ProtoMajor != 1 {
		t.Errorf("negotiated %s; HTTP/2 must be off", resp.Proto)
	}

	review, err := os.ReadFile("../../../pkg/admission/testdata/validate-pod-unpinned.request.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Post(base+"/validate", "application/json", bytes.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"allowed":false`) || !strings.Contains(string(body), "image not pinned by digest") {
		t.Errorf("/validate: %s", body)
	}
	if _, metrics := get(t, c, base+"/metrics"); !strings.Contains(metrics, `bulwark_admission_requests_total{decision="denied",kind="Pod",operation="CREATE",stage="validate"} 1`) {
		t.Errorf("/metrics lacks the denied request:\n%s", metrics)
	}

	old := client(ca, &tls.Config{MaxVersion: tls.VersionTLS11})
	if _, err := old.Get(base + "/healthz"); err == nil {
		t.Error("TLS 1.1 handshake succeeded; minimum is 1.2")
	}
}

func TestServerReloadsCertificateFromDisk(t *testing.T) {
	dir := t.TempDir()
	_, certFile, keyFile := writeServing(t, dir)
	addr, _, _ := startServer(t, certFile, keyFile)

	// Replace the files with a certificate from another CA, as a rotation would.
	ca2, err := certs.NewCA("rotated-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca2.IssueServing("bulwark", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := kp.WriteFiles(dir, "tls"); err != nil {
		t.Fatal(err)
	}
	c := client(ca2, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return // the new certificate is served, without a restart
		}
		if time.Now().After(deadline) {
			t.Fatalf("new certificate not served after 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServerShutsDownGracefully(t *testing.T) {
	dir := t.TempDir()
	ca, certFile, keyFile := writeServing(t, dir)
	addr, cancel, done := startServer(t, certFile, keyFile)
	c := client(ca, nil)
	if resp, _ := get(t, c, "https://"+addr+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("not ready: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after shutdown: %v", err)
		}
		done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := c.Get("https://" + addr + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}
