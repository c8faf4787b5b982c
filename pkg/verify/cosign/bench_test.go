package cosign_test

import (
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/verify"
	bwcosign "github.com/bulwark-dev/bulwark/pkg/verify/cosign"
	"github.com/bulwark-dev/bulwark/tests/oci"
)

// BenchmarkVerifyColdWithRTT verifies a new digest (nothing cached) signed by
// one key, through bulwark's guarded registry client, against a registry that
// answers each request after an injected 20 ms round trip. It reports the
// requests per verification and the p50 and p99 latency (docs/benchmarks.md):
//
//	go test ./pkg/verify/cosign -run XXX -bench VerifyColdWithRTT -benchtime 100x
func BenchmarkVerifyColdWithRTT(b *testing.B) {
	const rtt = 20 * time.Millisecond
	reg := oci.NewRegistry(b)
	key := oci.NewKey(b)
	images := make([]name.Digest, b.N)
	for i := range images {
		images[i] = reg.Push(b, "bench/app", "", oci.RandomImage(b))
		reg.Sign(b, images[i], key)
	}
	var delay atomic.Bool
	reg.Hook(func(http.ResponseWriter, *http.Request) bool {
		if delay.Load() {
			time.Sleep(rtt)
		}
		return false
	})
	rc := reg.Client(b, registry.Options{MaxBlobBytes: 4 << 20})
	v, err := bwcosign.New(bwcosign.Options{RemoteOptions: rc.RemoteOptionsFor})
	if err != nil {
		b.Fatal(err)
	}
	authorities := []verify.Authority{{Name: "release", Key: &verify.Key{PEM: key.PublicPEM}}}
	before := len(reg.Served())
	delay.Store(true)
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		r := v.Verify(b.Context(), verify.Request{Image: images[i], Authorities: authorities})
		durations = append(durations, time.Since(start))
		if r.Outcome != verify.Verified {
			b.Fatalf("%s: %+v", images[i], r)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(len(reg.Served())-before)/float64(b.N), "requests/op")
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(durations[(len(durations)*99)/100].Microseconds())/1000, "p99-ms")
}
