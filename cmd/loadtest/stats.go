package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is the latency distribution and throughput of one measured run.
type Summary struct {
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
	// Seconds is the measured wall time; PerSecond is Requests / Seconds.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	// Latencies in milliseconds, nearest-rank percentiles of the successful requests.
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
	MeanMs float64 `json:"meanMs"`
}

// summarize sorts lat in place and summarizes it over wall time elapsed.
func summarize(lat []time.Duration, errors int, elapsed time.Duration) Summary {
	s := Summary{Requests: len(lat), Errors: errors, Seconds: elapsed.Seconds()}
	if elapsed > 0 {
		s.PerSecond = float64(len(lat)) / elapsed.Seconds()
	}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	s.P50Ms = ms(percentile(lat, 0.50))
	s.P90Ms = ms(percentile(lat, 0.90))
	s.P99Ms = ms(percentile(lat, 0.99))
	s.MaxMs = ms(lat[len(lat)-1])
	s.MeanMs = ms(sum / time.Duration(len(lat)))
	return s
}

// percentile returns the nearest-rank q-quantile of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// Environment records where a result was measured.
type Environment struct {
	Time       string `json:"time"`
	GoVersion  string `json:"goVersion"`
	NumCPU     int    `json:"numCPU"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpuModel,omitempty"`
	LoadAvg    string `json:"loadAvg,omitempty"`
}

func environment() Environment {
	e := Environment{
		Time:       time.Now().UTC().Format(time.RFC3339),
		GoVersion:  runtime.Version(),
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.LoadAvg = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	return e
}

// table writes rows under header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range append([][]string{header}, rows...) {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	return tw.Flush()
}

// summaryCells renders s as the cells after a row's label.
func summaryCells(s Summary) []string {
	return []string{
		fmt.Sprint(s.Requests), fmt.Sprint(s.Errors), fmt.Sprintf("%.0f", s.PerSecond),
		fmt.Sprintf("%.3f", s.P50Ms), fmt.Sprintf("%.3f", s.P90Ms), fmt.Sprintf("%.3f", s.P99Ms), fmt.Sprintf("%.3f", s.MaxMs),
	}
}

var summaryHeader = []string{"requests", "errors", "per sec", "p50 ms", "p90 ms", "p99 ms", "max ms"}

// writeJSON writes v to path, indented; nothing when path is empty.
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// errorSample keeps the first few distinct error messages of a run.
type errorSample struct {
	seen map[string]int
}

const maxErrorSamples = 5

func (e *errorSample) add(msg string) {
	if e.seen == nil {
		e.seen = map[string]int{}
	}
	if _, ok := e.seen[msg]; ok || len(e.seen) < maxErrorSamples {
		e.seen[msg]++
	}
}

func (e *errorSample) merge(o *errorSample) {
	for msg, n := range o.seen {
		e.add(msg)
		if _, ok := e.seen[msg]; ok {
			e.seen[msg] += n - 1
		}
	}
}

func (e *errorSample) print(w io.Writer) {
	msgs := make([]string, 0, len(e.seen))
	for m := range e.seen {
		msgs = append(msgs, m)
	}
	slices.Sort(msgs)
	for _, m := range msgs {
		fmt.Fprintf(w, "  error ×%d: %s\n", e.seen[m], m)
	}
}
