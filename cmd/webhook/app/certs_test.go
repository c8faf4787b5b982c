package app

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-dev/bulwark/certs"
	"github.com/bulwark-dev/bulwark/internal/certrotate"
)

// TestSelfManagedCertificateDefaults pins the defaults of the self-managed
// certificate flags: the manifests are written against them.
func TestSelfManagedCertificateDefaults(t *testing.T) {
	want := CertOptions{Service: "bulwark-webhook", CertValidity: 2160 * time.Hour, CAValidity: 87600 * time.Hour, WebhookConfigName: "bulwark"}
	if diff := cmp.Diff(want, NewOptions().Certs); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if certrotate.DefaultLeaseName != "bulwark-webhook-certs" {
		t.Errorf("lease %q; deploy/base/rbac-certs.yaml names bulwark-webhook-certs", certrotate.DefaultLeaseName)
	}
}

// kubeconfig writes a kubeconfig for a server that is never called.
func kubeconfig(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "kubeconfig")
	data := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: https://127.0.0.1:1}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {token: t}}]\n"
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSelfManagedOptions(t *testing.T) {
	o := NewOptions()
	o.PolicyFile = "../../../deploy/base/policy.yaml"
	o.Kubeconfig = kubeconfig(t)
	o.Namespace = "bulwark-system"
	o.CertFile, o.KeyFile = "/absent/tls.crt", "/absent/tls.key" // not read in this mode
	o.Certs.Secret = "bulwark-webhook-tls"
	o.Certs.Hosts = []string{"127.0.0.1", "webhook.example"}
	cfg, err := o.Config()
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	sm := cfg.SelfManaged
	if sm == nil {
		t.Fatal("no self-managed configuration")
	}
	if sm.Namespace != "bulwark-system" || sm.SecretName != "bulwark-webhook-tls" || sm.WebhookConfigName != "bulwark" || sm.Identity == "" {
		t.Errorf("configuration %+v", sm)
	}
	wantNames := []string{"bulwark-webhook.bulwark-system.svc", "bulwark-webhook.bulwark-system.svc.cluster.local", "bulwark-webhook.bulwark-system", "bulwark-webhook", "webhook.example"}
	if diff := cmp.Diff(wantNames, sm.Spec.DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if len(sm.Spec.IPs) != 1 || sm.Spec.IPs[0].String() != "127.0.0.1" {
		t.Errorf("IPs %v", sm.Spec.IPs)
	}
	if sm.Spec.CertValidity != 2160*time.Hour || sm.Spec.CAValidity != 87600*time.Hour || sm.Spec.Propagation != certrotate.DefaultPropagation {
		t.Errorf("spec %+v", sm.Spec)
	}

	tests := map[string]struct {
		edit func(o *Options)
		want []string
	}{
		"no API access": {
			edit: func(o *Options) { o.Kubeconfig = "" },
			want: []string{"--cert-secret: self-managed certificates need API access"},
		},
		"bad names and validities": {
			edit: func(o *Options) {
				o.Certs.Service = "Bulwark.Webhook"
				o.Certs.Hosts = []string{"not a host"}
				o.Certs.CertValidity = time.Minute
				o.Certs.CAValidity = time.Minute
			},
			want: []string{`--cert-service "Bulwark.Webhook"`, `--cert-hosts "not a host"`, "--cert-validity: must be at least 10m0s", "--ca-validity: must be longer than --cert-validity"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := *o
			o.Certs.Hosts = nil
			tc.edit(&o)
			_, err := o.Config()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not contain %q", err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "--tls-cert-file") {
				t.Errorf("the certificate files were checked in self-managed mode: %v", err)
			}
		})
	}
}

// TestServerMovesConnectionsToANewCertificate: after a reload, a kept-alive
// connection is closed after its next request, and the client's next handshake
// gets the new certificate; a refused handshake is counted.
func TestServerMovesConnectionsToANewCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, certFile, keyFile := writeServing(t, dir)
	addr, _, _ := startServer(t, certFile, keyFile)
	c := client(ca, nil)
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	var handshakes atomic.Int32
	c.Transport.(*http.Transport).TLSClientConfig.VerifyConnection = func(tls.ConnectionState) error { handshakes.Add(1); return nil }

	first, _ := get(t, c, "https://"+addr+"/healthz")
	if first.Close {
		t.Fatal("connection closed with the certificate unchanged")
	}
	kp, err := ca.IssueServing("bulwark", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := kp.WriteFiles(dir, "tls"); err != nil {
		t.Fatal(err)
	}
	newSerial := mustLeaf(t, kp).SerialNumber
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := get(t, c, "https://"+addr+"/healthz")
		if resp.Close {
			break // told to reconnect
		}
		if time.Now().After(deadline) {
			t.Fatal("the kept-alive connection was never closed after the reload")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, _ := get(t, c, "https://"+addr+"/healthz")
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(newSerial) != 0 || handshakes.Load() != 2 {
		t.Errorf("after the close: serial %s over %d handshakes, want %s over 2", got, handshakes.Load(), newSerial)
	}

	// A client that does not trust the CA: its refusal is a handshake error.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("https://" + addr + "/healthz"); err == nil {
		t.Fatal("a client without the CA completed a handshake")
	}
	var metrics string
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(metrics, "bulwark_tls_handshake_errors_total 1\n") && time.Now().Before(deadline) {
		_, metrics = get(t, c, "https://"+addr+"/metrics")
	}
	for _, want := range []string{"bulwark_tls_handshake_errors_total 1\n", "bulwark_tls_stale_connections_closed_total 1\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}

func mustLeaf(t *testing.T, kp *certs.KeyPair) *x509.Certificate {
	t.Helper()
	m, _ := certs.Parse(map[string][]byte{certs.CertKey: kp.CertPEM, certs.KeyKey: kp.KeyPEM})
	if m.Serving == nil {
		t.Fatal("issued pair does not parse")
	}
	return m.Serving.Leaf
}
