package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulwark-dev/bulwark/tests/cluster"
)

// state is what up records about the webhook it started; the control plane records
// its own processes in clusterDir/pids.
type state struct {
	RegistryPID int       `json:"registryPID"`
	RegistryBin string    `json:"registryBin"`
	WebhookPID  int       `json:"webhookPID"`
	WebhookBin  string    `json:"webhookBin"`
	WebhookURL  string    `json:"webhookURL"`
	Started     time.Time `json:"started"`
	// Config is configSum when the webhook started.
	Config string `json:"config"`
}

// configSum digests the files the webhook and its registration were started from:
// the webhook reads its policy once, at start.
func configSum() string {
	h := sha256.New()
	for _, f := range []string{policyFile, webhookManifest} {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// procs are the webhook and the registry, as far as they were started.
func (st *state) procs() []proc {
	var ps []proc
	if st.WebhookPID > 1 {
		ps = append(ps, proc{name: filepath.Base(st.WebhookBin), pid: st.WebhookPID})
	}
	if st.RegistryPID > 1 {
		ps = append(ps, proc{name: filepath.Base(st.RegistryBin), pid: st.RegistryPID})
	}
	return ps
}

func readState() (*state, error) {
	data, err := os.ReadFile(stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	return &st, nil
}

func writeState(st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(stateFile, append(data, '\n'), 0o600)
}

// proc is a process the demo started, as recorded on disk.
type proc struct {
	name string // base name of its executable
	pid  int
}

// running reports whether p is alive and still runs its executable: a pid file
// outlives a reboot, after which the pid may belong to an unrelated process.
// replaced is true when the executable was rebuilt since p started.
func (p proc) running() (ok, replaced bool) {
	// A process that is gone, or a zombie, has no exe link.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	if err != nil {
		return false, false
	}
	exe, replaced = strings.CutSuffix(exe, " (deleted)")
	return filepath.Base(exe) == p.name, replaced
}

// clusterProcs reads the control plane's pids file, in start order.
func clusterProcs() ([]proc, error) {
	data, err := os.ReadFile(filepath.Join(clusterDir, "pids"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var procs []proc
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid <= 1 {
			continue
		}
		procs = append(procs, proc{name: f[1], pid: pid})
	}
	return procs, nil
}

// stopAll stops every recorded process that still runs — the webhook, then the
// control plane in reverse start order — and forgets the records. It returns the
// processes it stopped, in that order.
func stopAll() ([]proc, error) {
	stopped, err := stopWebhook()
	cp, cpErr := stopControlPlane()
	return append(stopped, cp...), errors.Join(err, cpErr)
}

// stopWebhook stops the recorded webhook if it still runs and removes the record.
func stopWebhook() ([]proc, error) {
	st, err := readState()
	if err != nil {
		return nil, fmt.Errorf("%w; stop the webhook by hand (ps -ef | grep bin/webhook) and remove %s", err, stateFile)
	}
	if st == nil {
		return nil, nil
	}
	var stopped []proc
	for _, p := range st.procs() {
		if ok, _ := p.running(); ok {
			if err := terminate(p.pid); err != nil {
				return nil, fmt.Errorf("stop %s (pid %d): %w", p.name, p.pid, err)
			}
			stopped = append(stopped, p)
		}
	}
	return stopped, os.Remove(stateFile)
}

// stopControlPlane stops the recorded control plane processes that still run, in
// reverse start order, and removes the record.
func stopControlPlane() ([]proc, error) {
	procs, err := clusterProcs()
	if err != nil {
		return nil, err
	}
	var stopped []proc
	var live []string
	for i := len(procs) - 1; i >= 0; i-- {
		if ok, _ := procs[i].running(); ok {
			live = append([]string{fmt.Sprintf("%d %s", procs[i].pid, procs[i].name)}, live...)
			stopped = append(stopped, procs[i])
		}
	}
	pids := filepath.Join(clusterDir, "pids")
	if len(live) == 0 {
		if err := os.Remove(pids); err != nil && !errors.Is(err, os.ErrNotExist) {
			return stopped, err
		}
		return stopped, nil
	}
	// StopDir signals every pid in the file; leave in it only those still ours.
	if err := os.WriteFile(pids, []byte(strings.Join(live, "\n")+"\n"), 0o600); err != nil {
		return stopped, err
	}
	if err := cluster.StopDir(clusterDir); err != nil {
		return stopped, fmt.Errorf("stop control plane: %w", err)
	}
	return stopped, nil
}

// terminate sends SIGTERM to pid and waits for it to exit, then sends SIGKILL.
func terminate(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	// The webhook drains for up to webhookShutdown.
	deadline := time.Now().Add(webhookShutdown + 5*time.Second)
	for time.Now().Before(deadline) {
		if gone(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	for range 50 {
		if gone(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("still running after SIGKILL")
}

// gone reports whether pid has exited; a zombie (not yet reaped by its new
// parent) counts as exited.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || strings.Contains(string(stat), ") Z ")
}

// reusable returns the state of a previous up and "" when it is fully running —
// every recorded process alive with its executable unchanged, started from the
// current policy and webhook configuration, the API server and the webhook ready —
// and otherwise what is not.
func reusable(ctx context.Context) (*state, string) {
	st, err := readState()
	if err != nil {
		return nil, err.Error()
	}
	if st == nil {
		return nil, "not started"
	}
	procs, err := clusterProcs()
	if err != nil {
		return nil, err.Error()
	}
	procs = append(procs, st.procs()...)
	// etcd, kube-apiserver, kube-controller-manager, the registry and the webhook.
	if len(procs) != 5 {
		return nil, fmt.Sprintf("%d of 5 processes recorded", len(procs))
	}
	for _, p := range procs {
		switch ok, replaced := p.running(); {
		case !ok:
			return nil, fmt.Sprintf("%s (pid %d) is not running", p.name, p.pid)
		case replaced:
			return nil, fmt.Sprintf("%s was rebuilt since it started", p.name)
		}
	}
	if st.Config != configSum() {
		return nil, fmt.Sprintf("%s or %s changed since the webhook started", policyFile, webhookManifest)
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfigFile},
		&clientcmd.ConfigOverrides{CurrentContext: cluster.Admin},
	).ClientConfig()
	if err != nil {
		return nil, fmt.Sprintf("kubeconfig: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err.Error()
	}
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return nil, fmt.Sprintf("kube-apiserver not ready: %v", err)
	}
	// The webhook's serving certificate comes from the cluster CA too.
	if err := probe(ctx, st.WebhookURL+"/readyz", cfg.TLSClientConfig.CAData); err != nil {
		return nil, fmt.Sprintf("webhook not ready: %v", err)
	}
	return st, ""
}
