package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// Defaults and bounds of the apiserver command.
const (
	DefaultAPIServerPods     = 1000
	DefaultAPIServerWarmup   = 50
	DefaultAPIServerRounds   = 2
	DefaultAPIServerManifest = "deploy/base/webhook.yaml"
	DefaultAPIServerTimeout  = 10 * time.Minute

	maxPods = 100_000
	// webhookName is metadata.name of both configurations in the manifest.
	webhookName = "bulwark"
	// switchTimeout bounds the wait for kube-apiserver to notice a registered or
	// removed webhook configuration.
	switchTimeout = 30 * time.Second
	createTimeout = 30 * time.Second
)

// apiserverOptions are the apiserver command's flags.
type apiserverOptions struct {
	Pods        int
	Concurrency []int
	Warmup      int
	Rounds      int
	Hardened    bool
	Manifest    string
	Assets      string
	Dir         string
	Timeout     time.Duration
	JSONFile    string
}

func newAPIServerCommand() *cobra.Command {
	o := &apiserverOptions{
		Pods:        DefaultAPIServerPods,
		Concurrency: []int{1},
		Warmup:      DefaultAPIServerWarmup,
		Rounds:      DefaultAPIServerRounds,
		Manifest:    DefaultAPIServerManifest,
		Assets:      os.Getenv(cluster.AssetsEnv),
		Timeout:     DefaultAPIServerTimeout,
	}
	cmd := &cobra.Command{
		Use:   "apiserver",
		Short: "Create pods through a local kube-apiserver without and with bulwark registered; report the added latency",
		Long: `apiserver starts etcd, kube-apiserver and kube-controller-manager (tests/cluster,
binaries from $BULWARK_ASSETS), and bulwark's webhook server in this process with a
certificate from the cluster's CA. As user dev, in a fresh namespace, it creates pods
with two containers pinned by digest and no securityContext (with --hardened: the
securityContext bulwark would add), first without the webhook configurations, then with deploy/base/webhook.yaml registered (so each pod
passes the mutating and the validating webhook). The two conditions alternate
--rounds times, each after --warmup unmeasured pods, to cancel drift. For each
--concurrency it reports latency percentiles and throughput, and the difference of
the percentiles: the latency bulwark adds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return runAPIServer(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Pods, "pods", o.Pods, "measured pod creations per condition (without, with the webhook) and concurrency")
	fs.IntSliceVar(&o.Concurrency, "concurrency", o.Concurrency, "concurrent creations; a list measures each level in turn, e.g. 1,8")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "unmeasured pod creations before each measured batch")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "times the two conditions alternate; --pods is split across them")
	fs.BoolVar(&o.Hardened, "hardened", o.Hardened, "create pods that already carry bulwark's hardening, so the mutating webhook returns no patch")
	fs.StringVar(&o.Manifest, "manifest", o.Manifest, "webhook configurations to register (rules, selectors and failure policy as shipped)")
	fs.StringVar(&o.Assets, "assets", o.Assets, "directory of the control plane binaries (default $"+cluster.AssetsEnv+")")
	fs.StringVar(&o.Dir, "dir", o.Dir, "working directory for the control plane; a temporary one, removed afterwards, if empty")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up after this long")
	fs.StringVar(&o.JSONFile, "json", o.JSONFile, "also write the results as JSON to this file")
	return cmd
}

func (o *apiserverOptions) validate() error {
	var errs []error
	if o.Rounds < 1 || o.Rounds > 100 {
		errs = append(errs, fmt.Errorf("--rounds: must be in [1, 100], got %d", o.Rounds))
	}
	if o.Pods < max(o.Rounds, 1) || o.Pods > maxPods {
		errs = append(errs, fmt.Errorf("--pods: must be in [--rounds, %d], got %d", maxPods, o.Pods))
	}
	if o.Warmup < 0 || o.Warmup > maxPods {
		errs = append(errs, fmt.Errorf("--warmup: must be in [0, %d], got %d", maxPods, o.Warmup))
	}
	if len(o.Concurrency) == 0 {
		errs = append(errs, errors.New("--concurrency: at least one level"))
	}
	for _, c := range o.Concurrency {
		if c < 1 || c > maxConcurrency {
			errs = append(errs, fmt.Errorf("--concurrency: each level must be in [1, %d], got %d", maxConcurrency, c))
		}
	}
	if _, err := os.Stat(o.Manifest); err != nil {
		errs = append(errs, fmt.Errorf("--manifest: %w", err))
	}
	if o.Assets == "" {
		errs = append(errs, fmt.Errorf("--assets: required (or set $%s; hack/build-controlplane.sh prints the directory)", cluster.AssetsEnv))
	}
	if o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: must be positive, got %s", o.Timeout))
	}
	return errors.Join(errs...)
}

// APIServerResult is the JSON output of an apiserver run.
type APIServerResult struct {
	Environment Environment `json:"environment"`
	// Pods is the number of measured creations per condition and level.
	Pods   int `json:"pods"`
	Warmup int `json:"warmup"`
	Rounds int `json:"rounds"`
	// Hardened pods need no patch from the mutating webhook.
	Hardened bool          `json:"hardened"`
	Levels   []LevelResult `json:"levels"`
}

// LevelResult compares the two conditions at one concurrency.
type LevelResult struct {
	Concurrency int     `json:"concurrency"`
	Without     Summary `json:"without"`
	With        Summary `json:"with"`
	// AddedP50Ms and AddedP99Ms are With minus Without, per percentile.
	AddedP50Ms float64 `json:"addedP50Ms"`
	AddedP99Ms float64 `json:"addedP99Ms"`
	// Webhook breaks the added time down, as means over the measured creations.
	Webhook WebhookTimes `json:"webhook"`
	// CPUPerPodMs is the CPU time each process spent per measured creation, in
	// milliseconds, without and with the webhook. "loadtest" is this process: the
	// client and, with the webhook, bulwark's server.
	WithoutCPUPerPodMs map[string]float64 `json:"withoutCPUPerPodMs"`
	WithCPUPerPodMs    map[string]float64 `json:"withCPUPerPodMs"`
}

// WebhookTimes are mean durations in milliseconds of one admission call: as
// kube-apiserver measured it (apiserver_admission_webhook_admission_duration_seconds:
// encoding, TLS round trip, decoding, patch application) and inside bulwark's handler
// (bulwark_admission_duration_seconds).
type WebhookTimes struct {
	MutateCallMs      float64 `json:"mutateCallMs"`
	ValidateCallMs    float64 `json:"validateCallMs"`
	MutateHandlerMs   float64 `json:"mutateHandlerMs"`
	ValidateHandlerMs float64 `json:"validateHandlerMs"`
}

// apiserverBench is one run: a control plane, bulwark's server, a namespace.
type apiserverBench struct {
	o          *apiserverOptions
	cluster    *cluster.Cluster
	dev, admin kubernetes.Interface
	namespace  string
	webhookURL string
	// webhookClient reads bulwark's /readyz and /metrics over TLS.
	webhookClient *http.Client
}

func runAPIServer(ctx context.Context, out io.Writer, o *apiserverOptions) (err error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "bulwark-loadtest-"); err != nil {
			return err
		}
		defer func() {
			if err == nil {
				os.RemoveAll(dir)
			} else {
				fmt.Fprintf(out, "logs of the control plane and the webhook are in %s (kept)\n", dir)
			}
		}()
	}

	fmt.Fprintln(out, "starting etcd, kube-apiserver and kube-controller-manager …")
	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "cluster"), Assets: o.Assets})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer c.Stop()

	b := &apiserverBench{o: o, cluster: c}
	devCfg := c.RESTConfig(cluster.Dev)
	// No client-side rate limit: the client must not be what is measured.
	devCfg.QPS = -1
	devCfg.UserAgent = "bulwark-loadtest"
	if b.dev, err = kubernetes.NewForConfig(devCfg); err != nil {
		return err
	}
	if b.admin, err = kubernetes.NewForConfig(c.RESTConfig(cluster.Admin)); err != nil {
		return err
	}
	b.namespace = "bench-" + randomSuffix()
	if err := c.CreateDevNamespace(ctx, b.namespace); err != nil {
		return fmt.Errorf("create namespace %s: %w", b.namespace, err)
	}

	stopWebhook, err := b.startWebhook(ctx, filepath.Join(dir, "webhook"))
	if err != nil {
		return fmt.Errorf("start webhook: %w", err)
	}
	defer func() {
		if serr := stopWebhook(); serr != nil && err == nil {
			err = fmt.Errorf("stop webhook: %w", serr)
		}
	}()

	res := APIServerResult{Environment: environment(), Pods: o.Pods, Warmup: o.Warmup, Rounds: o.Rounds, Hardened: o.Hardened}
	podKind := "2 containers pinned by digest, no securityContext (the mutating webhook patches it)"
	if o.Hardened {
		podKind = "2 containers pinned by digest, already hardened (no patch)"
	}
	fmt.Fprintf(out, "apiserver: %d measured pod creations per condition and concurrency, %d round(s), %d warm-up pods before each batch; user %s, namespace %s\npods: %s\n",
		o.Pods, o.Rounds, o.Warmup, cluster.Dev, b.namespace, podKind)
	var failed int
	for _, conc := range o.Concurrency {
		lvl, errs, err := b.level(ctx, out, conc)
		if err != nil {
			return err
		}
		failed += errs
		res.Levels = append(res.Levels, lvl)
	}
	if err := c.UninstallWebhook(ctx, webhookName); err != nil {
		return fmt.Errorf("remove webhook configurations: %w", err)
	}

	rows := [][]string{}
	for _, l := range res.Levels {
		rows = append(rows,
			append([]string{strconv.Itoa(l.Concurrency), "without"}, summaryCells(l.Without)...),
			append([]string{strconv.Itoa(l.Concurrency), "with"}, summaryCells(l.With)...))
	}
	if err := table(out, append([]string{"concurrency", "webhook"}, summaryHeader...), rows); err != nil {
		return err
	}
	rows = rows[:0]
	for _, l := range res.Levels {
		for i, m := range []map[string]float64{l.WithoutCPUPerPodMs, l.WithCPUPerPodMs} {
			row := []string{strconv.Itoa(l.Concurrency), []string{"without", "with"}[i]}
			for _, name := range cpuColumns {
				row = append(row, fmt.Sprintf("%.3f", m[name]))
			}
			rows = append(rows, row)
		}
	}
	fmt.Fprintln(out, "CPU time per measured pod creation, ms:")
	if err := table(out, append([]string{"concurrency", "webhook"}, cpuColumns...), rows); err != nil {
		return err
	}
	for _, l := range res.Levels {
		w := l.Webhook
		fmt.Fprintf(out, "concurrency %d: bulwark adds p50 %+.3f ms, p99 %+.3f ms (difference of percentiles)\n", l.Concurrency, l.AddedP50Ms, l.AddedP99Ms)
		fmt.Fprintf(out, "  mean per call — kube-apiserver's webhook call: mutate %.3f ms, validate %.3f ms; inside bulwark's handler: mutate %.3f ms, validate %.3f ms\n",
			w.MutateCallMs, w.ValidateCallMs, w.MutateHandlerMs, w.ValidateHandlerMs)
	}
	if err := writeJSON(o.JSONFile, res); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d pod creations failed", failed)
	}
	return nil
}

// level measures both conditions at concurrency conc, alternating them each round.
func (b *apiserverBench) level(ctx context.Context, out io.Writer, conc int) (LevelResult, int, error) {
	lvl := LevelResult{Concurrency: conc}
	var lat [2][]time.Duration
	var elapsed [2]time.Duration
	var errs [2]int
	var samples [2]errorSample
	var before, after metricSnapshot
	var cpu [2]map[string]time.Duration
	perRound := (b.o.Pods + b.o.Rounds - 1) / b.o.Rounds
	for r := range b.o.Rounds {
		n := min(perRound, b.o.Pods-r*perRound)
		for i, on := range []bool{false, true} {
			if err := b.switchWebhook(ctx, on); err != nil {
				return lvl, 0, err
			}
			prefix := fmt.Sprintf("c%d-r%d-%s", conc, r, map[bool]string{false: "without", true: "with"}[on])
			if _, _, _, err := b.createPods(ctx, prefix+"-warmup", b.o.Warmup, conc); err != nil {
				return lvl, 0, err
			}
			// Metrics are read around every batch, so both conditions pay for it alike
			// (outside the measured window); only the webhook's are used.
			s, err := b.snapshot(ctx)
			if err != nil {
				return lvl, 0, err
			}
			if on {
				before.add(s, -1)
			}
			cpuBefore := b.cpu()
			l, e, sample, err := b.createPods(ctx, prefix, n, conc)
			if err != nil {
				return lvl, 0, err
			}
			cpu[i] = addCPU(cpu[i], b.cpu(), cpuBefore)
			if s, err = b.snapshot(ctx); err != nil {
				return lvl, 0, err
			}
			if on {
				after.add(s, 1)
			}
			lat[i] = append(lat[i], l.lat...)
			elapsed[i] += l.elapsed
			errs[i] += e
			samples[i].merge(&sample)
		}
	}
	lvl.Without = summarize(lat[0], errs[0], elapsed[0])
	lvl.With = summarize(lat[1], errs[1], elapsed[1])
	lvl.AddedP50Ms = round3(lvl.With.P50Ms - lvl.Without.P50Ms)
	lvl.AddedP99Ms = round3(lvl.With.P99Ms - lvl.Without.P99Ms)
	after.add(before, 1)
	lvl.Webhook = after.times()
	lvl.WithoutCPUPerPodMs = perPod(cpu[0], len(lat[0]))
	lvl.WithCPUPerPodMs = perPod(cpu[1], len(lat[1]))
	for i := range samples {
		samples[i].print(out)
	}
	return lvl, errs[0] + errs[1], nil
}

// batch is the latencies of one batch of creations.
type batch struct {
	lat     []time.Duration
	elapsed time.Duration
}

// createPods creates n pods named prefix-<i> with conc workers. A failed creation is
// counted and sampled; err is only for a run that cannot go on.
func (b *apiserverBench) createPods(ctx context.Context, prefix string, n, conc int) (batch, int, errorSample, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var res batch
	var errs int
	var sample errorSample
	var wg sync.WaitGroup
	start := time.Now()
	for range min(conc, max(n, 1)) {
		wg.Go(func() {
			var lat []time.Duration
			var e int
			var s errorSample
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(n) {
					break
				}
				pod := userPod(fmt.Sprintf("%s-%d", prefix, i))
				if b.o.Hardened {
					harden(pod)
				}
				cctx, cancel := context.WithTimeout(ctx, createTimeout)
				t := time.Now()
				_, err := b.dev.CoreV1().Pods(b.namespace).Create(cctx, pod, metav1.CreateOptions{})
				d := time.Since(t)
				cancel()
				if err != nil {
					e++
					s.add(err.Error())
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			defer mu.Unlock()
			res.lat = append(res.lat, lat...)
			errs += e
			sample.merge(&s)
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, errs, sample, ctx.Err()
}

// Processes whose CPU time is measured: the control plane's, by the names
// tests/cluster records in <dir>/pids, and this one.
const (
	selfProcess = "loadtest"
	cpuTotal    = "total"
)

var cpuColumns = []string{"kube-apiserver", "etcd", "kube-controller-manager", selfProcess, cpuTotal}

// cpu returns the CPU time used so far by each measured process.
func (b *apiserverBench) cpu() map[string]time.Duration {
	out := map[string]time.Duration{selfProcess: selfCPU()}
	// tests/cluster writes one "<pid> <name>" line per process it started.
	data, _ := os.ReadFile(filepath.Join(b.cluster.Dir, "pids"))
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if pid, err := strconv.Atoi(f[0]); err == nil {
			if d, err := processCPU(pid); err == nil {
				out[f[1]] = d
			}
		}
	}
	return out
}

// addCPU adds after minus before to acc, per process.
func addCPU(acc, after, before map[string]time.Duration) map[string]time.Duration {
	if acc == nil {
		acc = map[string]time.Duration{}
	}
	for name, d := range after {
		acc[name] += d - before[name]
	}
	return acc
}

// perPod divides CPU times by n creations, in milliseconds, and adds the total.
func perPod(cpu map[string]time.Duration, n int) map[string]float64 {
	out := map[string]float64{}
	if n == 0 {
		return out
	}
	var total time.Duration
	for name, d := range cpu {
		out[name] = round3(float64(d) / float64(time.Millisecond) / float64(n))
		total += d
	}
	out[cpuTotal] = round3(float64(total) / float64(time.Millisecond) / float64(n))
	return out
}

// switchWebhook registers (on) or removes bulwark's webhook configurations and waits
// until kube-apiserver calls, or no longer calls, both webhooks.
func (b *apiserverBench) switchWebhook(ctx context.Context, on bool) error {
	var err error
	if on {
		err = b.cluster.InstallWebhook(ctx, b.o.Manifest, b.webhookURL, b.cluster.CA.CertPEM)
	} else {
		err = b.cluster.UninstallWebhook(ctx, webhookName)
	}
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, switchTimeout, true, func(ctx context.Context) (bool, error) {
		mutating, validating, err := b.probe(ctx)
		last = err
		return err == nil && mutating == on && validating == on, nil
	})
	if err != nil {
		return fmt.Errorf("wait for kube-apiserver to see the webhook configurations %s (last probe error: %v): %w",
			map[bool]string{false: "removed", true: "registered"}[on], last, err)
	}
	return nil
}

// probe creates two pods in dry-run mode: one with an unpinned image, which only the
// validating webhook denies, and one pinned, which only the mutating webhook hardens.
func (b *apiserverBench) probe(ctx context.Context) (mutating, validating bool, err error) {
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	denied := func(err error) bool { return err != nil && strings.Contains(err.Error(), "validate.bulwark.dev") }
	unpinned := userPod("probe-unpinned")
	unpinned.Spec.Containers = unpinned.Spec.Containers[:1]
	unpinned.Spec.Containers[0].Image = "registry.example/team-a/web:1.4.2"
	_, err = b.dev.CoreV1().Pods(b.namespace).Create(ctx, unpinned, dryRun)
	validating = denied(err)
	if err != nil && !validating {
		return false, false, err
	}
	got, err := b.dev.CoreV1().Pods(b.namespace).Create(ctx, userPod("probe-pinned"), dryRun)
	switch {
	case denied(err):
		// Validating is on and mutating not yet: the pod lacks the hardening.
		return false, validating, nil
	case err != nil:
		return false, false, err
	}
	return got.Spec.Containers[0].SecurityContext != nil, validating, nil
}

// startWebhook runs bulwark's server (app.Run) in this process on 127.0.0.1 with a
// serving certificate from the cluster's CA and the default policy, configured as
// deployed: API access (as cluster.Admin here, for access reviews, the namespace
// cache and Events) and a grant key. It logs as the webhook binary does (JSON,
// level 0), to dir/webhook.log, and returns once /readyz answers 200.
func (b *apiserverBench) startWebhook(ctx context.Context, dir string) (stop func() error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	kp, err := b.cluster.CA.IssueServing("bulwark-webhook", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, certValidity)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := kp.WriteFiles(dir, "tls")
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "webhook.log"))
	if err != nil {
		return nil, err
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logf.SetLogger(log)
	p := policy.Defaults()
	kube := b.cluster.RESTConfig(cluster.Admin)
	kube.UserAgent = "bulwark-webhook"
	grantKey := make([]byte, 32)
	_, _ = rand.Read(grantKey)
	cfg := &app.Config{
		BindAddress:     "127.0.0.1:0",
		CertFile:        certFile,
		KeyFile:         keyFile,
		CertReload:      app.DefaultCertReload,
		ShutdownTimeout: 5 * time.Second,
		Policy:          &p,
		Kube:            kube,
		GrantKey:        grantKey,
		EventQueueSize:  app.DefaultEventQueueSize,
	}
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- app.Run(logr.NewContext(ctx, log), cfg, ready) }()
	select {
	case addr := <-ready:
		b.webhookURL = "https://" + addr.String()
	case err := <-done:
		cancel()
		logFile.Close()
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b.cluster.CA.CertPEM)
	b.webhookClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	stop = func() error {
		cancel()
		err := <-done
		logFile.Close()
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, switchTimeout, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.webhookURL+"/readyz", nil)
		if err != nil {
			return false, err
		}
		resp, err := b.webhookClient.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("wait for the webhook to be ready: %w", err), stop())
	}
	return stop, nil
}

// metricSnapshot holds the sums and counts of the admission duration histograms.
type metricSnapshot struct {
	// [mutate, validate] × [sum, count]
	call, handler [2][2]float64
}

func (m *metricSnapshot) add(o metricSnapshot, sign float64) {
	for i := range 2 {
		for j := range 2 {
			m.call[i][j] += sign * o.call[i][j]
			m.handler[i][j] += sign * o.handler[i][j]
		}
	}
}

func (m *metricSnapshot) times() WebhookTimes {
	mean := func(sc [2]float64) float64 {
		if sc[1] <= 0 {
			return 0
		}
		return round3(sc[0] / sc[1] * 1000)
	}
	return WebhookTimes{
		MutateCallMs: mean(m.call[0]), ValidateCallMs: mean(m.call[1]),
		MutateHandlerMs: mean(m.handler[0]), ValidateHandlerMs: mean(m.handler[1]),
	}
}

// snapshot reads the admission histograms of kube-apiserver and of bulwark.
func (b *apiserverBench) snapshot(ctx context.Context) (metricSnapshot, error) {
	var s metricSnapshot
	api, err := b.admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return s, fmt.Errorf("read kube-apiserver metrics: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.webhookURL+"/metrics", nil)
	if err != nil {
		return s, err
	}
	resp, err := b.webhookClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("read webhook metrics: %w", err)
	}
	own, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		return s, fmt.Errorf("read webhook metrics: %w", err)
	}
	const apiMetric = "apiserver_admission_webhook_admission_duration_seconds"
	const ownMetric = "bulwark_admission_duration_seconds"
	for i, sel := range [2][2]string{{`name="mutate.bulwark.dev"`, `stage="mutate"`}, {`name="validate.bulwark.dev"`, `stage="validate"`}} {
		s.call[i] = histogramSumCount(string(api), apiMetric, sel[0])
		s.handler[i] = histogramSumCount(string(own), ownMetric, sel[1])
	}
	return s, nil
}

// histogramSumCount adds up the _sum and _count samples of histogram metric, in the
// Prometheus text format, over the series whose labels contain label.
func histogramSumCount(text, metric, label string) [2]float64 {
	var sc [2]float64
	for line := range strings.Lines(text) {
		for i, suffix := range []string{"_sum{", "_count{"} {
			rest, ok := strings.CutPrefix(line, metric+suffix)
			if !ok {
				continue
			}
			labels, value, ok := strings.Cut(rest, "} ")
			if !ok || !strings.Contains(labels, label) {
				continue
			}
			f := strings.Fields(value)
			if len(f) == 0 {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				sc[i] += v
			}
		}
	}
	return sc
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
