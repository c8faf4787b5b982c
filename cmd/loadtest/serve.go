package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bulwark-dev/bulwark/cmd/webhook/app"
	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// DefaultServeDuration bounds how long serve runs.
const DefaultServeDuration = 10 * time.Minute

func newServeCommand() *cobra.Command {
	var (
		dir, policyFile, cpuProfile string
		duration                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run bulwark's webhook server (app.Run) on 127.0.0.1 with a fresh CA in --dir, optionally under the CPU profiler",
		Long: `serve writes a fresh CA and serving certificate into --dir (as 'loadtest certs'),
runs the webhook server in this process with the default policy (or --policy), logging
as the webhook binary does, and prints its URL and CA file. It stops on SIGINT or
SIGTERM, or after --duration. With --cpuprofile it writes a Go CPU profile of the
server, TLS and HTTP included, for 'go tool pprof':

  taskset -c 0 env GOMAXPROCS=1 loadtest serve --dir /tmp/lt --cpuprofile /tmp/lt/cpu.pprof &
  taskset -c 1 loadtest reviews --url https://127.0.0.1:PORT --ca /tmp/lt/ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration <= 0 || duration > 24*time.Hour {
				return fmt.Errorf("--duration: must be in (0, 24h], got %s", duration)
			}
			p := policy.Defaults()
			if policyFile != "" {
				data, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("--policy: %w", err)
				}
				parsed, err := policy.Parse(data)
				if err != nil {
					return fmt.Errorf("--policy %s: %w", policyFile, err)
				}
				p = *parsed
			}
			files, err := writeCerts(dir)
			if err != nil {
				return err
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			log := logr.FromSlogHandler(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			logf.SetLogger(log)
			cfg := &app.Config{
				BindAddress:     "127.0.0.1:0",
				CertFile:        files.cert,
				KeyFile:         files.key,
				CertReload:      app.DefaultCertReload,
				ShutdownTimeout: 5 * time.Second,
				Policy:          &p,
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), duration)
			defer cancel()
			ready := make(chan net.Addr, 1)
			done := make(chan error, 1)
			go func() { done <- app.Run(logr.NewContext(ctx, log), cfg, ready) }()
			select {
			case addr := <-ready:
				fmt.Fprintf(cmd.OutOrStdout(), "url=https://%s\nca=%s\npid=%d\n", addr, files.ca, os.Getpid())
			case err := <-done:
				return err
			}
			if err := <-done; err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", "", "directory for ca.crt, tls.crt and tls.key")
	fs.StringVar(&policyFile, "policy", "", "policy file; the default policy if empty")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the server to this file")
	fs.DurationVar(&duration, "duration", DefaultServeDuration, "stop after this long")
	return cmd
}
