package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Defaults and bounds of the reviews command.
const (
	DefaultReviewsDuration    = 10 * time.Second
	DefaultReviewsWarmup      = time.Second
	DefaultReviewsConcurrency = 8
	DefaultReviewsMaxRequests = 2_000_000
	DefaultReviewsPath        = "/validate"

	maxRunDuration = 10 * time.Minute
	maxConcurrency = 1024
	// reviewTimeout is the webhook's timeoutSeconds in deploy/base/webhook.yaml.
	reviewTimeout = 10 * time.Second
	maxResponse   = 1 << 20
)

// reviewsOptions are the reviews command's flags.
type reviewsOptions struct {
	URL         string
	Path        string
	CAFile      string
	Kind        string
	Duration    time.Duration
	Warmup      time.Duration
	Concurrency int
	MaxRequests int
	ServerPID   int
	JSONFile    string
}

// reviewsConfig is validated configuration for a reviews run.
type reviewsConfig struct {
	reviewsOptions
	target *url.URL
	mutate bool
	roots  *x509.CertPool
	tmpl   *reviewTemplate
}

func newReviewsCommand() *cobra.Command {
	o := &reviewsOptions{
		Kind:        kindPod,
		Duration:    DefaultReviewsDuration,
		Warmup:      DefaultReviewsWarmup,
		Concurrency: DefaultReviewsConcurrency,
		MaxRequests: DefaultReviewsMaxRequests,
	}
	cmd := &cobra.Command{
		Use:   "reviews",
		Short: "Replay AdmissionReviews over TLS to a running webhook; report throughput and latency",
		Long: `reviews replays the CREATE AdmissionReview kube-apiserver sends for a pod with two
containers pinned by digest (or a Deployment of it), each with a distinct uid, over
keep-alive HTTP/1.1 TLS connections, one per --concurrency. It checks every response
(uid, allowed, and on /mutate the JSONPatch) and counts a wrong one as an error. The
run stops after --warmup plus --duration, or after --max-requests, whichever is first.

With --server-pid it also reports the server's CPU time per review, from /proc.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config()
			if err != nil {
				return err
			}
			return runReviews(cmd.Context(), cmd.OutOrStdout(), cfg)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.URL, "url", o.URL, "webhook URL on a loopback address, e.g. https://127.0.0.1:8443 or https://127.0.0.1:8443/mutate")
	fs.StringVar(&o.Path, "path", o.Path, "request path (/validate or /mutate); overrides the path of --url, which defaults to "+DefaultReviewsPath)
	fs.StringVar(&o.CAFile, "ca", o.CAFile, "PEM file of the CA that signed the webhook's serving certificate")
	fs.StringVar(&o.Kind, "kind", o.Kind, "object under review: pod or deployment")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long to measure, after the warm-up")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "how long to send before measuring (connections, caches, GC)")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "concurrent connections, each with one request in flight")
	fs.IntVar(&o.MaxRequests, "max-requests", o.MaxRequests, "stop after this many requests, warm-up included")
	fs.IntVar(&o.ServerPID, "server-pid", o.ServerPID, "pid of the webhook process, to report its CPU time per review (Linux /proc)")
	fs.StringVar(&o.JSONFile, "json", o.JSONFile, "also write the results as JSON to this file")
	return cmd
}

func (o *reviewsOptions) config() (*reviewsConfig, error) {
	var errs []error
	cfg := &reviewsConfig{reviewsOptions: *o}
	u, err := url.Parse(o.URL)
	switch {
	case o.URL == "":
		errs = append(errs, errors.New("--url: required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("--url: %w", err))
	case u.Scheme != "https":
		errs = append(errs, fmt.Errorf("--url: scheme must be https, got %q", u.Scheme))
	case !isLoopback(u.Hostname()):
		errs = append(errs, fmt.Errorf("--url: host must be a loopback address such as 127.0.0.1, got %q", u.Hostname()))
	default:
		switch {
		case o.Path != "":
			u.Path = o.Path
		case u.Path == "" || u.Path == "/":
			u.Path = DefaultReviewsPath
		}
		u.RawQuery = "timeout=" + strconv.Itoa(int(reviewTimeout.Seconds())) + "s" // as kube-apiserver sends it
		cfg.target = u
		cfg.mutate = strings.HasSuffix(u.Path, "/mutate")
	}
	if o.CAFile == "" {
		errs = append(errs, errors.New("--ca: required"))
	} else if pem, err := os.ReadFile(o.CAFile); err != nil {
		errs = append(errs, fmt.Errorf("--ca: %w", err))
	} else {
		cfg.roots = x509.NewCertPool()
		if !cfg.roots.AppendCertsFromPEM(pem) {
			errs = append(errs, fmt.Errorf("--ca: no PEM certificate in %s", o.CAFile))
		}
	}
	if o.Duration <= 0 || o.Duration > maxRunDuration {
		errs = append(errs, fmt.Errorf("--duration: must be in (0, %s], got %s", maxRunDuration, o.Duration))
	}
	if o.Warmup < 0 || o.Warmup > maxRunDuration {
		errs = append(errs, fmt.Errorf("--warmup: must be in [0, %s], got %s", maxRunDuration, o.Warmup))
	}
	if o.Concurrency < 1 || o.Concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("--concurrency: must be in [1, %d], got %d", maxConcurrency, o.Concurrency))
	}
	if o.MaxRequests < 1 {
		errs = append(errs, fmt.Errorf("--max-requests: must be positive, got %d", o.MaxRequests))
	}
	if o.ServerPID < 0 {
		errs = append(errs, fmt.Errorf("--server-pid: must not be negative, got %d", o.ServerPID))
	}
	if cfg.target != nil {
		tmpl, err := newReviewTemplate(o.Kind, cfg.mutate)
		if err != nil {
			errs = append(errs, fmt.Errorf("--kind: %w", err))
		}
		cfg.tmpl = tmpl
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReviewsResult is the JSON output of a reviews run.
type ReviewsResult struct {
	Environment Environment `json:"environment"`
	URL         string      `json:"url"`
	Kind        string      `json:"kind"`
	BodyBytes   int         `json:"bodyBytes"`
	Concurrency int         `json:"concurrency"`
	Summary     Summary     `json:"summary"`
	// ClientCPUCores is the load generator's CPU time over the measured wall time.
	ClientCPUCores float64 `json:"clientCPUCores"`
	// Server* are set with --server-pid: CPU time of the webhook process over the
	// measured wall time, per successful review, and its inverse.
	ServerCPUCores           float64 `json:"serverCPUCores,omitempty"`
	ServerCPUMicrosPerReview float64 `json:"serverCPUMicrosPerReview,omitempty"`
	ReviewsPerServerCPUSec   float64 `json:"reviewsPerServerCPUSecond,omitempty"`
}

// reviewWorker is one connection's share of a run.
type reviewWorker struct {
	lat    []time.Duration
	errors int
	sample errorSample
}

func runReviews(ctx context.Context, out io.Writer, cfg *reviewsConfig) error {
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: cfg.roots, MinVersion: tls.VersionTLS12},
		// HTTP/1.1 with keep-alive, one connection per worker, as kube-apiserver
		// talks to webhooks (bulwark's server offers only http/1.1).
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: reviewTimeout}

	// The run stops by itself: after warm-up plus duration, or max requests, and at
	// the latest when this context ends.
	ctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+reviewTimeout+5*time.Second)
	defer cancel()
	begin := time.Now()
	measureFrom := begin.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)

	// CPU counters at the start of the measured window.
	var startClient, startServer time.Duration
	var serverErr error
	sampled := make(chan struct{})
	timer := time.AfterFunc(cfg.Warmup, func() {
		startClient = selfCPU()
		if cfg.ServerPID > 0 {
			startServer, serverErr = processCPU(cfg.ServerPID)
		}
		close(sampled)
	})
	defer timer.Stop()

	var issued atomic.Int64
	workers := make([]reviewWorker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.lat = make([]time.Duration, 0, 4096)
		wg.Go(func() {
			for ctx.Err() == nil {
				n := issued.Add(1)
				if n > int64(cfg.MaxRequests) {
					return
				}
				start := time.Now()
				if !start.Before(end) {
					return
				}
				err := review(ctx, client, cfg, requestUID(uint64(n)))
				d := time.Since(start)
				if start.Before(measureFrom) {
					continue
				}
				if err != nil {
					w.errors++
					w.sample.add(err.Error())
					continue
				}
				w.lat = append(w.lat, d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	select {
	case <-sampled:
	default:
		return fmt.Errorf("the run ended during the warm-up (%d requests issued); raise --max-requests or lower --warmup", issued.Load())
	}
	clientCPU := selfCPU() - startClient

	var all []time.Duration
	var errs int
	var sample errorSample
	for i := range workers {
		all = append(all, workers[i].lat...)
		errs += workers[i].errors
		sample.merge(&workers[i].sample)
	}
	res := ReviewsResult{
		Environment:    environment(),
		URL:            cfg.target.String(),
		Kind:           cfg.Kind,
		BodyBytes:      len(cfg.tmpl.body(requestUID(0))),
		Concurrency:    cfg.Concurrency,
		Summary:        summarize(all, errs, elapsed),
		ClientCPUCores: round3(clientCPU.Seconds() / elapsed.Seconds()),
	}
	if cfg.ServerPID > 0 && serverErr == nil {
		var endServer time.Duration
		endServer, serverErr = processCPU(cfg.ServerPID)
		if cpu := endServer - startServer; serverErr == nil && cpu > 0 && len(all) > 0 {
			res.ServerCPUCores = round3(cpu.Seconds() / elapsed.Seconds())
			res.ServerCPUMicrosPerReview = round3(float64(cpu.Microseconds()) / float64(len(all)))
			res.ReviewsPerServerCPUSec = float64(int(float64(len(all)) / cpu.Seconds()))
		}
	}

	fmt.Fprintf(out, "reviews: POST %s  kind=%s  body=%d B  connections=%d  measured %.1fs after %s warm-up\n",
		res.URL, res.Kind, res.BodyBytes, res.Concurrency, elapsed.Seconds(), cfg.Warmup)
	if err := table(out, append([]string{""}, summaryHeader...), [][]string{append([]string{"reviews"}, summaryCells(res.Summary)...)}); err != nil {
		return err
	}
	fmt.Fprintf(out, "load generator CPU: %.2f cores\n", res.ClientCPUCores)
	switch {
	case serverErr != nil:
		fmt.Fprintf(out, "server CPU: unknown (%v)\n", serverErr)
	case res.ServerCPUCores > 0:
		fmt.Fprintf(out, "server (pid %d) CPU: %.2f cores, %.1f µs per review → %.0f reviews per CPU-second\n",
			cfg.ServerPID, res.ServerCPUCores, res.ServerCPUMicrosPerReview, res.ReviewsPerServerCPUSec)
	}
	sample.print(out)
	if err := writeJSON(cfg.JSONFile, res); err != nil {
		return err
	}
	if errs > 0 {
		return fmt.Errorf("%d of %d measured reviews failed", errs, errs+len(all))
	}
	return nil
}

// reviewResponse is the part of an AdmissionReview response the load tool checks.
type reviewResponse struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Response   *struct {
		UID       string  `json:"uid"`
		Allowed   bool    `json:"allowed"`
		Patch     []byte  `json:"patch"`
		PatchType *string `json:"patchType"`
		Status    *struct {
			Message string `json:"message"`
		} `json:"status"`
	} `json:"response"`
}

// review sends one review with request uid and checks the response.
func review(ctx context.Context, client *http.Client, cfg *reviewsConfig, uid string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.target.String(), bytes.NewReader(cfg.tmpl.body(uid)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, */*")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	var rr reviewResponse
	if err := json.Unmarshal(body, &rr); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	r := rr.Response
	switch {
	case rr.APIVersion != "admission.k8s.io/v1" || rr.Kind != "AdmissionReview":
		return fmt.Errorf("response is %s %s, want admission.k8s.io/v1 AdmissionReview", rr.APIVersion, rr.Kind)
	case r == nil:
		return errors.New("response has no response")
	case r.UID != uid:
		return errors.New("response uid does not match the request's")
	case r.Allowed != cfg.tmpl.allowed:
		msg := ""
		if r.Status != nil {
			msg = ": " + r.Status.Message
		}
		return fmt.Errorf("allowed=%t, want %t%s", r.Allowed, cfg.tmpl.allowed, msg)
	case cfg.tmpl.patched && (len(r.Patch) == 0 || r.PatchType == nil || *r.PatchType != "JSONPatch"):
		return errors.New("no JSONPatch in the response, want the hardening patch")
	case !cfg.tmpl.patched && len(r.Patch) > 0:
		return fmt.Errorf("unexpected patch %s", r.Patch)
	}
	return nil
}

func round3(f float64) float64 { return float64(int(f*1000+0.5)) / 1000 }

// selfCPU returns this process's user plus system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// processCPU returns the user plus system CPU time of process pid, all its threads.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after it start at state (3).
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("read CPU time of pid %d: unexpected /proc stat format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
