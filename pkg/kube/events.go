package kube

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"

	"github.com/bulwark-dev/bulwark/pkg/admission"
)

// ReportingController names bulwark in the Events it records.
const ReportingController = "bulwark"

// EventQueue records admission Events through events.k8s.io/v1 without ever
// blocking admission: Record drops the Event, counting it, when the queue is full.
type EventQueue struct {
	queue   chan admission.Event
	dropped prometheus.Counter
	client  kubernetes.Interface
}

var _ admission.EventRecorder = (*EventQueue)(nil)

// NewEventQueue returns a queue of size Events; dropped counts what overflows.
func NewEventQueue(client kubernetes.Interface, size int, dropped prometheus.Counter) *EventQueue {
	return &EventQueue{queue: make(chan admission.Event, size), dropped: dropped, client: client}
}

// Record implements admission.EventRecorder.
func (q *EventQueue) Record(ev admission.Event) {
	select {
	case q.queue <- ev:
	default:
		q.dropped.Inc()
	}
}

// Run sends queued Events until ctx ends.
func (q *EventQueue) Run(ctx context.Context) {
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: q.client.EventsV1()})
	broadcaster.StartRecordingToSink(ctx.Done())
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, ReportingController)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-q.queue:
			ref := ev.Regarding
			recorder.Eventf(&ref, nil, ev.Type, ev.Reason, ev.Action, "%s", ev.Note)
		}
	}
}
