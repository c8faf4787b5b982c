// Package e2e proves bulwark through the path a user takes: a client → the real
// kube-apiserver → bulwark's real webhook server over TLS → the stored object. The
// control plane comes from tests/cluster; `make test` builds its binaries.
package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
)

const webhookManifest = "../../deploy/base/webhook.yaml"

// env is shared by every test of the package: one control plane, one webhook.
var env struct {
	cluster *cluster.Cluster
	admin   kubernetes.Interface
	dev     kubernetes.Interface
	webhook *webhookServer
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here needs the control plane.
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "bulwark-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keep := true // until the tests pass, for the logs
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start control plane:", err)
		return 1
	}
	defer c.Stop()
	env.cluster = c
	if err := c.InstallCRDs(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: install CRDs:", err)
		return 1
	}
	env.admin = kubernetes.NewForConfigOrDie(c.RESTConfig(cluster.Admin))
	env.dev = kubernetes.NewForConfigOrDie(c.RESTConfig(cluster.Dev))

	p := policy.Defaults()
	env.webhook, err = startWebhook(ctx, filepath.Join(dir, "webhook"), c, &p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start webhook:", err)
		return 1
	}
	if err := c.InstallWebhook(ctx, webhookManifest, env.webhook.URL, c.CA.CertPEM); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: install webhook:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: logs of the control plane are in %s (kept)\n", c.Dir)
	}
	keep = code != 0
	return code
}

// grantKey signs exemption grants; every webhook of the run shares it, as the
// replicas of a deployment share the Secret.
var grantKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}()

// webhookServer is bulwark's real server (app.Run) on 127.0.0.1 with a serving
// certificate from the cluster's CA.
type webhookServer struct {
	URL      string
	CertFile string
	KeyFile  string
	stop     context.CancelFunc
	done     chan error
}

func startWebhook(ctx context.Context, dir string, c *cluster.Cluster, p *policy.Policy, configure ...func(*app.Config)) (*webhookServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	kp, err := c.CA.IssueServing("bulwark-webhook", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := kp.WriteFiles(dir, "tls")
	if err != nil {
		return nil, err
	}
	cfg := &app.Config{
		BindAddress:     "127.0.0.1:0",
		CertFile:        certFile,
		KeyFile:         keyFile,
		CertReload:      200 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		Policy:          p,
		Kube:            c.RESTConfig(cluster.Bulwark),
		GrantKey:        grantKey,
		EventQueueSize:  1000,
		ClientCAs:       clientCAs(c),
		ClientCertNames: []string{cluster.WebhookClientName},
		Namespace:       "bulwark-system",
	}
	for _, f := range configure {
		f(cfg)
	}
	ctx, stop := context.WithCancel(ctx)
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	logFile, err := os.Create(filepath.Join(dir, "webhook.log"))
	if err != nil {
		stop()
		return nil, err
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logf.SetLogger(log)
	go func() { done <- app.Run(logr.NewContext(ctx, log), cfg, ready); logFile.Close() }()
	select {
	case addr := <-ready:
		return &webhookServer{URL: "https://" + addr.String(), CertFile: certFile, KeyFile: keyFile, stop: stop, done: done}, nil
	case err := <-done:
		stop()
		return nil, err
	}
}

// Stop shuts the server down gracefully and returns Run's error.
func (w *webhookServer) Stop() error {
	w.stop()
	return <-w.done
}

// clientCAs trusts the cluster CA, which issued the API server's webhook client
// certificate.
func clientCAs(c *cluster.Cluster) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA.CertPEM)
	return pool
}
