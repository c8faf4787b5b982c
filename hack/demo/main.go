// Command demo brings bulwark up on a local control plane and shows it admitting,
// hardening and denying the sample manifests of deploy/samples, through kubectl as a
// user sees it. hack/demo.sh builds and runs it (`make demo`, `make demo-down`):
//
//	demo up --assets DIR [--webhook bin/webhook]
//	demo down
//
// It works in the repository root and keeps everything under .demo/: the control
// plane (.demo/cluster), the webhook's certificate, log and pid, and the kubeconfig.
// What it starts runs in its own session and outlives it; `demo down` stops it.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// Layout, relative to the repository root (the working directory).
const (
	demoDir         = ".demo"
	clusterDir      = ".demo/cluster"
	webhookDir      = ".demo/webhook"
	webhookLog      = ".demo/webhook.log"
	stateFile       = ".demo/state.json"
	kubeconfigFile  = ".demo/kubeconfig"
	samplesDir      = "deploy/samples"
	policyFile      = "deploy/base/policy.yaml"
	webhookManifest = "deploy/base/webhook.yaml"
)

const (
	// webhookCertValidity stays within the cluster CA's 30 days.
	webhookCertValidity = 29 * 24 * time.Hour
	webhookReadyTimeout = 30 * time.Second
	// webhookShutdown bounds the webhook's graceful shutdown on `down`.
	webhookShutdown = 5 * time.Second
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch os.Args[1] {
	case "up":
		fs := flag.NewFlagSet("up", flag.ExitOnError)
		assets := fs.String("assets", os.Getenv(cluster.AssetsEnv), "directory with etcd, kube-apiserver, kube-controller-manager and kubectl (hack/build-controlplane.sh prints it)")
		webhook := fs.String("webhook", "bin/webhook", "bulwark's webhook binary")
		_ = fs.Parse(os.Args[2:])
		err = up(ctx, *assets, *webhook)
	case "down":
		err = down()
	case "registry":
		// Started by up in its own process; serves until terminated.
		fs := flag.NewFlagSet("registry", flag.ExitOnError)
		webhook := fs.String("webhook", "bin/webhook", "bulwark's webhook binary, pushed as demo/bulwark-webhook:dev")
		_ = fs.Parse(os.Args[2:])
		err = serveRegistry(ctx, *webhook)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulwark demo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: demo up --assets DIR [--webhook bin/webhook] | demo down")
	os.Exit(2)
}

// up shows the samples on a running demo, or starts one first. A demo that is only
// partly running (a process died, the webhook binary was rebuilt) is stopped and
// started afresh, so nothing is left behind.
func up(ctx context.Context, assets, webhookBin string) error {
	if assets == "" {
		return fmt.Errorf("--assets is required (hack/build-controlplane.sh prints the directory)")
	}
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		return fmt.Errorf("kubectl missing from the assets (run hack/build-controlplane.sh): %w", err)
	}
	webhookBin, err := filepath.Abs(webhookBin)
	if err != nil {
		return err
	}

	if st, problem := reusable(ctx); problem == "" {
		section("bulwark demo is already running (since %s)", st.Started.Local().Format("2006-01-02 15:04"))
		fmt.Println("    showing the samples again; `make demo-down` stops it, then `make demo` starts afresh")
	} else {
		stopped, err := stopAll()
		if len(stopped) > 0 {
			section("Restarting, as %s; stopped what ran of the previous demo", problem)
			printStopped(stopped)
		}
		if err != nil {
			return fmt.Errorf("stop the previous demo: %w", err)
		}
		if err := start(ctx, assets, webhookBin); err != nil {
			if ctx.Err() != nil {
				// What was waiting reports a timeout; the cause is the interrupt.
				err = errors.New("interrupted while starting")
			}
			section("Start failed; stopping what was started (logs are kept in %s/)", demoDir)
			stopped, stopErr := stopAll()
			printStopped(stopped)
			return errors.Join(err, stopErr)
		}
	}

	ok, err := runSamples(ctx, kubectl)
	printTryIt(kubectl)
	if err != nil {
		return fmt.Errorf("samples: %w (the demo keeps running; `make demo-down` stops it)", err)
	}
	if !ok {
		return errors.New("some samples did not get the outcome their header states (see above); the demo keeps running, `make demo-down` stops it")
	}
	return nil
}

// start starts the control plane and the webhook, registers the webhook and writes
// the kubeconfig. On error the caller stops whatever was recorded as started.
func start(ctx context.Context, assets, webhookBin string) error {
	// Nothing runs from here (stopAll has run): begin with an empty directory, so
	// etcd starts without a previous demo's objects.
	if err := os.RemoveAll(demoDir); err != nil {
		return err
	}
	if err := os.MkdirAll(webhookDir, 0o700); err != nil {
		return err
	}
	dir, err := filepath.Abs(clusterDir)
	if err != nil {
		return err
	}

	section("Control plane")
	fmt.Printf("    starting etcd, kube-apiserver and kube-controller-manager in %s/\n", clusterDir)
	begin := time.Now()
	stopProgress := progress("still starting", 10*time.Second)
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Assets: assets, Detach: true})
	stopProgress()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	fmt.Printf("    ready in %s: kube-apiserver at %s, logs in %s/*.log\n", time.Since(begin).Round(time.Second), c.URL, clusterDir)
	if err := c.InstallCRDs(ctx); err != nil {
		return fmt.Errorf("install the ImageScan CRD: %w", err)
	}
	fmt.Printf("    ImageScan CRD installed from %s\n", cluster.CRDFile)

	section("Registry")
	reg, pid, err := startRegistry(ctx, webhookBin)
	if pid != 0 {
		self, _ := os.Executable()
		// Recorded at once, so that a failure from here on still stops it.
		if werr := writeState(&state{RegistryPID: pid, RegistryBin: self, Started: time.Now()}); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("    OCI registry over TLS at %s (pid %d, log %s): demo/signed:1.0 is signed with a\n", reg.Host, pid, registryLog)
	fmt.Println("    key made for this demo (as `cosign sign --key` does), demo/unsigned:1.0 is not;")
	fmt.Println("    demo/bulwark-webhook:dev is bulwark's own image, built from the webhook binary and signed")
	if err := writeDemoPolicy(reg); err != nil {
		return err
	}
	if err := writeRegistrySamples(reg); err != nil {
		return err
	}
	fmt.Printf("    %s: the shipped policy plus a trust rule for %s/demo/** (signature check on)\n", demoPolicyFile, reg.Host)

	section("Webhook")
	url, err := startWebhook(ctx, webhookBin, c)
	if err != nil {
		return err
	}

	section("Registering bulwark with the API server (%s)", webhookManifest)
	if err := c.InstallWebhook(ctx, webhookManifest, url, c.CA.CertPEM); err != nil {
		return fmt.Errorf("register webhook: %w", err)
	}
	fmt.Printf("    MutatingWebhookConfiguration bulwark   -> %s/mutate\n", url)
	fmt.Printf("    ValidatingWebhookConfiguration bulwark -> %s/validate\n", url)
	fmt.Println("    rules, namespace selector and failurePolicy: Fail as shipped; only the Service is replaced by this URL")

	section("Scanning the demo registry's images (grype inside the webhook, database %s)", demoDBDir)
	stopProgress = progress("still scanning", 10*time.Second)
	err = warmScans(ctx, c.RESTConfig(cluster.Admin), reg)
	stopProgress()
	if err != nil {
		return fmt.Errorf("scan the demo images: %w; see %s", err, webhookLog)
	}
	fmt.Println("    done: `kubectl --context admin get imagescans` lists them")

	if err := c.WriteKubeconfig(kubeconfigFile, cluster.Dev); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	section("Kubeconfig %s: contexts dev (current), ops, admin; namespace %s", kubeconfigFile, cluster.DevNamespace)
	return nil
}

// startWebhook runs the real webhook binary in its own session, with a serving
// certificate for 127.0.0.1 from the cluster CA, records it in stateFile and waits
// until it is ready. It returns the webhook's base URL.
func startWebhook(ctx context.Context, bin string, c *cluster.Cluster) (string, error) {
	ca := c.CA
	dir, err := filepath.Abs(webhookDir)
	if err != nil {
		return "", err
	}
	// bulwark's own identity (least-privilege RBAC from deploy/base/rbac.yaml) and
	// the key that signs exemption grants, as a deployment mounts it from a Secret.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := c.WriteKubeconfig(kubeconfig, cluster.Bulwark); err != nil {
		return "", err
	}
	grantKey := filepath.Join(dir, "grant.key")
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	if err := os.WriteFile(grantKey, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		return "", err
	}
	kp, err := ca.IssueServing("bulwark-webhook", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, webhookCertValidity)
	if err != nil {
		return "", fmt.Errorf("issue webhook serving certificate: %w", err)
	}
	certFile, keyFile, err := kp.WriteFiles(dir, "tls")
	if err != nil {
		return "", err
	}
	fmt.Printf("    serving certificate for 127.0.0.1 from the cluster CA: %s/tls.crt\n", webhookDir)
	policy, err := filepath.Abs(demoPolicyFile)
	if err != nil {
		return "", err
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	url := "https://" + addr

	logFile, err := os.Create(webhookLog)
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--bind-address="+addr,
		"--policy="+policy,
		"--tls-cert-file="+certFile, "--tls-key-file="+keyFile,
		"--shutdown-timeout="+webhookShutdown.String(),
		"--kubeconfig="+kubeconfig, "--grant-key-file="+grantKey,
		"--registry-ca-file="+registryCAFile,
		// The scanner runs inside the webhook, on the database the demo wrote.
		"--scanner-db-dir="+demoDBDir,
		// Only the API server, with its client certificate from the cluster CA, may
		// ask for decisions.
		"--client-ca-file="+c.CAFile, "--client-cert-name="+cluster.WebhookClientName,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own session, like the control plane: it outlives this program and make,
	// and a Ctrl-C in the terminal does not reach it. `down` stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start webhook: %w", err)
	}
	// Recorded at once, so that a failure from here on still stops it.
	st, err := readState()
	if err != nil || st == nil {
		st = &state{Started: time.Now()}
	}
	st.WebhookPID, st.WebhookBin, st.WebhookURL, st.Config = cmd.Process.Pid, bin, url, configSum()
	if err := writeState(st); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", err
	}
	fmt.Printf("    started %s (pid %d) --policy %s, logging to %s\n", rel(bin), cmd.Process.Pid, demoPolicyFile, webhookLog)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitReady(ctx, url+"/readyz", ca.CertPEM, exited); err != nil {
		return "", fmt.Errorf("webhook: %w; see %s", err, webhookLog)
	}
	fmt.Printf("    ready: %s/readyz answers over TLS, verified against the cluster CA\n", url)
	return url, nil
}

// waitReady polls url, trusting only caPEM, until it answers 200, the process
// exits or webhookReadyTimeout passes.
func waitReady(ctx context.Context, url string, caPEM []byte, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, webhookReadyTimeout)
	defer cancel()
	var last error
	for {
		if last = probe(ctx, url, caPEM); last == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before it was ready (%v)", err)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", webhookReadyTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// probe makes one GET of url over TLS verified against caPEM and wants 200.
func probe(ctx context.Context, url string, caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate")
	}
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// down stops everything a previous up started.
func down() error {
	stopped, err := stopAll()
	if len(stopped) == 0 && err == nil {
		fmt.Println("bulwark demo: nothing is running")
		return nil
	}
	section("Stopped the bulwark demo")
	printStopped(stopped)
	if err != nil {
		return err
	}
	fmt.Printf("    logs and the kubeconfig stay in %s/ (`rm -rf %s` removes them)\n", demoDir, demoDir)
	return nil
}

func printStopped(procs []proc) {
	if len(procs) == 0 {
		fmt.Println("    nothing was left running")
	}
	for _, p := range procs {
		fmt.Printf("    %-24s pid %d\n", p.name, p.pid)
	}
}

func section(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

// progress prints a line every interval until the returned stop is called, for
// steps that are otherwise silent for long.
func progress(what string, every time.Duration) (stop func()) {
	begin := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Printf("    ... %s (%s)\n", what, time.Since(begin).Round(time.Second))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// rel returns path relative to the working directory when it is inside it.
func rel(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	r, err := filepath.Rel(wd, path)
	if err != nil || strings.HasPrefix(r, "..") {
		return path
	}
	return r
}

// freePort returns a TCP port on 127.0.0.1 that is free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
