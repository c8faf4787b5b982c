// Command loadtest is bulwark's load tool. It measures the webhook two ways:
//
//   - reviews: replays realistic AdmissionReviews over TLS (keep-alive HTTP/1.1, as
//     kube-apiserver sends them) to a running webhook and reports throughput and
//     latency percentiles;
//   - apiserver: starts the local control plane (tests/cluster) and creates pods
//     through kube-apiserver without and with bulwark registered, and reports the
//     latency the webhook adds.
//
// It only ever talks to 127.0.0.1, and every run is bounded in time and in count.
// hack/bench.sh (`make bench`) runs both; docs/benchmarks.md records the results.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "loadtest",
		Short:         "Measure bulwark's webhook: replayed AdmissionReviews, and pod creation through kube-apiserver",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.AddCommand(newReviewsCommand(), newAPIServerCommand(), newServeCommand(), newCertsCommand())
	return cmd
}
