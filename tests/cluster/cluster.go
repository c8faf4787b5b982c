// Package cluster runs a local Kubernetes control plane for bulwark's tests, demo and
// load tool: etcd, kube-apiserver and kube-controller-manager built from the module
// proxy by hack/build-controlplane.sh. It has RBAC, token authentication for several
// identities, an audit log, and a controller manager so Deployments really create
// ReplicaSets and Pods. There is no scheduler or kubelet: pods stay Pending, which is
// all admission needs.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/bulwark-dev/bulwark/certs"
)

// Identities known to the control plane.
const (
	// Admin is a cluster administrator (group system:masters).
	Admin = "admin"
	// Dev may only create and manage pods and workloads in DevNamespace.
	Dev = "dev"
	// Ops is a platform operator (group bulwark:operators, admin in every namespace).
	Ops = "ops"
	// DevNamespace is the namespace Dev works in.
	DevNamespace = "team-a"
	// Bulwark is the webhook's own identity, bound to deploy/base/rbac.yaml's
	// least-privilege ClusterRole.
	Bulwark = "bulwark"

	controllerManagerUser = "system:kube-controller-manager"
	startTimeout          = 90 * time.Second
)

// WebhookClientName is the common name of the client certificate the API server
// presents to admission webhooks.
const WebhookClientName = "kube-apiserver-webhook-client"

// AssetsEnv names the directory holding the etcd, kube-apiserver and
// kube-controller-manager binaries.
const AssetsEnv = "BULWARK_ASSETS"

// Options configure Start.
type Options struct {
	// Dir holds certificates, etcd data, logs, the audit log and kubeconfigs.
	Dir string
	// Assets is the directory with the binaries; defaults to $BULWARK_ASSETS.
	Assets string
	// Detach starts the processes in their own session so they outlive the caller
	// (the demo); Stop or StopDir ends them. Otherwise they die with the caller.
	Detach bool
}

// Cluster is a running control plane.
type Cluster struct {
	// Assets is the directory of the control plane binaries (kubectl included).
	Assets   string
	Dir      string
	URL      string
	CAFile   string
	AuditLog string
	CA       *certs.CA
	tokens   map[string]string
	procs    []*exec.Cmd
}

// Start starts etcd, kube-apiserver and kube-controller-manager and waits until the
// API server is ready and the bootstrap objects exist.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.Assets == "" {
		o.Assets = os.Getenv(AssetsEnv)
	}
	if o.Assets == "" {
		// Build or find the cached binaries; quick once they are cached.
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(), "hack", "build-controlplane.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("no control plane binaries: set %s or run hack/build-controlplane.sh: %w", AssetsEnv, err)
		}
		o.Assets = strings.TrimSpace(string(out))
	}
	for _, bin := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(o.Assets, bin)); err != nil {
			return nil, fmt.Errorf("control plane binary missing (run hack/build-controlplane.sh): %w", err)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cluster{Assets: o.Assets, Dir: o.Dir, AuditLog: filepath.Join(o.Dir, "audit.log"), tokens: map[string]string{}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.writeFiles(); err != nil {
		return nil, err
	}

	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.start(o, "etcd",
		"--name=default",
		"--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return nil, err
	}

	c.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := c.start(o, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+c.path("apiserver.crt"), "--tls-private-key-file="+c.path("apiserver.key"),
		"--client-ca-file="+c.CAFile,
		"--token-auth-file="+c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.path("sa.pub"),
		"--service-account-signing-key-file="+c.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		// No Service endpoints for a loopback address; nothing here routes to them.
		"--endpoint-reconciler-type=none",
		"--admission-control-config-file="+c.path("admission-config.yaml"),
		"--audit-policy-file="+c.path("audit-policy.yaml"),
		"--audit-log-path="+c.AuditLog,
		"--audit-log-format=json", "--audit-log-mode=blocking",
		"--audit-log-maxsize=100", "--audit-log-maxbackup=1",
		"--v=0",
	); err != nil {
		return nil, err
	}
	if err := c.waitHealthy(ctx, c.URL+"/readyz", c.tokens[Admin], "kube-apiserver"); err != nil {
		return nil, err
	}
	if err := c.WriteKubeconfig(c.path("controller-manager.kubeconfig"), controllerManagerUser); err != nil {
		return nil, err
	}
	if err := c.start(o, "kube-controller-manager",
		"--kubeconfig="+c.path("controller-manager.kubeconfig"),
		"--authentication-kubeconfig="+c.path("controller-manager.kubeconfig"),
		"--authorization-kubeconfig="+c.path("controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[3]),
		"--cert-dir="+c.path("controller-manager"),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+c.path("sa.key"),
		"--root-ca-file="+c.CAFile,
		"--leader-elect=false",
		"--controllers=*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl,-bootstrapsigner,-tokencleaner",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--v=0",
	); err != nil {
		return nil, err
	}
	if err := c.waitHealthy(ctx, "https://127.0.0.1:"+strconv.Itoa(ports[3])+"/healthz", "", "kube-controller-manager"); err != nil {
		return nil, err
	}
	if err := c.bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("bootstrap RBAC and namespaces: %w", err)
	}
	return c, nil
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

// writeFiles writes the CA, serving certificate, service-account keys, token file
// and audit policy.
func (c *Cluster) writeFiles() error {
	ca, err := certs.NewCA("bulwark-dev-cluster-ca", 30*24*time.Hour)
	if err != nil {
		return err
	}
	c.CA = ca
	c.CAFile = c.path("ca.crt")
	if err := os.WriteFile(c.CAFile, ca.CertPEM, 0o644); err != nil {
		return err
	}
	serving, err := ca.IssueServing("kube-apiserver", []string{"localhost", "kubernetes", "kubernetes.default.svc"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, 30*24*time.Hour)
	if err != nil {
		return err
	}
	if _, _, err := serving.WriteFiles(c.Dir, "apiserver"); err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.path("sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	var tokens strings.Builder
	for _, id := range []struct{ user, groups string }{
		{Admin, "system:masters"},
		{Dev, "developers"},
		{Ops, "bulwark:operators"},
		{Bulwark, ""},
		{controllerManagerUser, ""},
	} {
		tok, err := randomToken()
		if err != nil {
			return err
		}
		c.tokens[id.user] = tok
		fmt.Fprintf(&tokens, "%s,%s,%s,%q\n", tok, id.user, id.user, id.groups)
	}
	if err := os.WriteFile(c.path("tokens.csv"), []byte(tokens.String()), 0o600); err != nil {
		return err
	}
	// The API server authenticates to admission webhooks with a client certificate
	// from the cluster CA (webhooks verify it with --client-ca-file).
	client, err := ca.IssueClient(WebhookClientName, nil, 30*24*time.Hour)
	if err != nil {
		return err
	}
	clientCert, clientKey, err := client.WriteFiles(c.Dir, "webhook-client")
	if err != nil {
		return err
	}
	webhookKubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
users:
  - name: "*"
    user:
      client-certificate: %s
      client-key: %s
`, clientCert, clientKey)
	if err := os.WriteFile(c.path("webhook-client.kubeconfig"), []byte(webhookKubeconfig), 0o600); err != nil {
		return err
	}
	admissionConfig := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: %[1]s
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: %[1]s
`, c.path("webhook-client.kubeconfig"))
	if err := os.WriteFile(c.path("admission-config.yaml"), []byte(admissionConfig), 0o644); err != nil {
		return err
	}
	return os.WriteFile(c.path("audit-policy.yaml"), []byte(auditPolicy), 0o644)
}

// auditPolicy records every write at Metadata level, which carries the admission
// webhooks' audit annotations, and leaves out reads, events, leases and health.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    verbs: ["get", "list", "watch"]
  - level: None
    resources:
      - {group: "", resources: ["events"]}
      - {group: "events.k8s.io", resources: ["events"]}
      - {group: "coordination.k8s.io", resources: ["leases"]}
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/metrics"]
  - level: Metadata
`

func (c *Cluster) start(o Options, name string, args ...string) error {
	logFile, err := os.Create(c.path(name + ".log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(o.Assets, name), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if o.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// Die with the test process even when it is killed.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	f, err := os.OpenFile(c.path("pids"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%d %s\n", cmd.Process.Pid, name)
	return err
}

// waitHealthy polls url until it answers 200, a process exits, or the timeout.
func (c *Cluster) waitHealthy(ctx context.Context, url, token, name string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureLoopbackTLS()}}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		last = err
		for _, p := range c.procs {
			if p.ProcessState != nil || processGone(p.Process.Pid) {
				return fmt.Errorf("%s exited; see %s", p.Path, c.path(filepath.Base(p.Path)+".log"))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %s (last: %v); see %s", name, startTimeout, last, c.path(name+".log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends every process Start started and waits for them.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = p.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	c.procs = nil
	_ = os.Remove(c.path("pids"))
}

// StopDir ends the processes a detached Start recorded in dir, for the demo's
// "down" command running in another process.
func StopDir(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "pids"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		fields := strings.Fields(lines[i])
		if len(fields) != 2 {
			continue
		}
		pid, err := strconv.Atoi(fields[0])
		if err != nil || pid <= 1 || !isProcess(pid, fields[1]) {
			// Gone, or the pid now belongs to another program: never signal it.
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for range 50 {
			if processGone(pid) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !processGone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return os.Remove(filepath.Join(dir, "pids"))
}

// isProcess reports whether pid runs the binary called name.
func isProcess(pid int, name string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == name
}

func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	// A zombie child still answers signal 0; /proc says it is gone.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || strings.Contains(string(stat), ") Z ")
}

// RESTConfig returns a client configuration authenticating as user.
func (c *Cluster) RESTConfig(user string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     c.tokens[user],
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CA.CertPEM},
		QPS:             500,
		Burst:           1000,
	}
}

// WriteKubeconfig writes a kubeconfig for user to path.
func (c *Cluster) WriteKubeconfig(path, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bulwark-dev"] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: c.CA.CertPEM}
	users := []string{Admin, Dev, Ops}
	if user == controllerManagerUser || user == Bulwark {
		users = []string{user}
	}
	for _, u := range users {
		cfg.AuthInfos[u] = &clientcmdapi.AuthInfo{Token: c.tokens[u]}
		cfg.Contexts[u] = &clientcmdapi.Context{Cluster: "bulwark-dev", AuthInfo: u, Namespace: DevNamespace}
	}
	cfg.CurrentContext = user
	return clientcmd.WriteToFile(*cfg, path)
}

// insecureLoopbackTLS is for health polls of processes this package started on
// 127.0.0.1 only; the controller manager serves a certificate it made itself.
func insecureLoopbackTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback health poll of our own child process
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
