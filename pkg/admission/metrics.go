package admission

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the admission metrics. Labels are bounded: stages, kinds, operations,
// decisions, check ids, reasons and actions are fixed sets.
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	verdicts   *prometheus.CounterVec
	exemptions *prometheus.CounterVec
	// EventsDropped counts Events dropped because the queue was full.
	EventsDropped prometheus.Counter
}

// NewMetrics creates the admission metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_admission_requests_total",
			Help: "Admission requests handled, by stage, kind, operation and decision (allowed, denied, patched, error).",
		}, []string{"stage", "kind", "operation", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_admission_duration_seconds",
			Help:    "Time to decide an admission request, from decoded request to response.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"stage"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_policy_verdicts_total",
			Help: "Policy verdicts, by check, reason and action (deny, warn, audit).",
		}, []string{"check", "reason", "action"}),
	}
	m.exemptions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulwark_exemptions_total",
		Help: "Exemptions found on admitted objects, by origin (namespace, object, template), result (honoured, rejected) and cause of rejection.",
	}, []string{"origin", "result", "cause"})
	m.EventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bulwark_events_dropped_total",
		Help: "Kubernetes Events dropped because the event queue was full; admission never waits for Events.",
	})
	reg.MustRegister(m.requests, m.duration, m.verdicts, m.exemptions, m.EventsDropped)
	return m
}
