package admission

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// Decision labels of the bulwark_admission_requests_total metric and values of the
// "decision" audit annotation.
const (
	decisionAllowed = "allowed"
	decisionPatched = "patched"
	decisionWarned  = "warned"
	decisionDenied  = "denied"
	decisionError   = "error"
)

// maxAnnotationValue bounds each audit annotation value.
const maxAnnotationValue = 1024

// Handler admits objects in one stage (mutate or validate) under a policy.
type Handler struct {
	stage   policy.Stage
	policy  func() *policy.Policy
	metrics *Metrics
}

// NewHandler returns a handler for stage. current returns the policy in force; it is
// called once per request so a reloaded policy applies to the next request.
func NewHandler(stage policy.Stage, current func() *policy.Policy, m *Metrics) *Handler {
	return &Handler{stage: stage, policy: current, metrics: m}
}

var _ admission.Handler = (*Handler)(nil)

// Webhook wraps h as controller-runtime's admission webhook, which decodes the
// AdmissionReview, bounds the request size, recovers panics and writes the response.
func (h *Handler) Webhook() *admission.Webhook {
	wh := &admission.Webhook{Handler: h}
	return wh.WithRecoverPanic(true)
}

// Handle decides one admission request.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, decision := h.handle(ctx, req)
	h.metrics.duration.WithLabelValues(string(h.stage)).Observe(time.Since(start).Seconds())
	h.metrics.requests.WithLabelValues(string(h.stage), req.Kind.Kind, string(req.Operation), decision).Inc()
	return resp
}

func (h *Handler) handle(ctx context.Context, req admission.Request) (admission.Response, string) {
	log := logf.FromContext(ctx)
	var op policy.Operation
	switch req.Operation {
	case admissionv1.Create:
		op = policy.OperationCreate
	case admissionv1.Update:
		op = policy.OperationUpdate
	case admissionv1.Delete, admissionv1.Connect:
		// They start nothing new.
		return admission.Allowed(""), decisionAllowed
	default:
		// Fail closed: a request without a known operation is not a real review.
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unsupported operation %q", req.Operation)), decisionError
	}
	if req.SubResource != "" && req.SubResource != "ephemeralcontainers" {
		// Status and other subresources cannot change what runs.
		return admission.Allowed(""), decisionAllowed
	}

	gvk := schema.GroupVersionKind(req.Kind)
	obj, err := decodeObject(gvk, req.Object.Raw)
	if err != nil {
		// Fail closed: what bulwark cannot read, it does not admit.
		log.Info("Rejected undecodable request", "error", err.Error())
		return admission.Errored(http.StatusBadRequest, err), decisionError
	}
	if obj.spec == nil {
		return admission.Allowed(""), decisionAllowed
	}
	in := &policy.Input{Stage: h.stage, Operation: op, Pod: obj.pod, Spec: obj.spec, SpecPath: obj.specPath}
	if op == policy.OperationUpdate {
		old, err := decodeObject(gvk, req.OldObject.Raw)
		if err != nil {
			log.Info("Rejected undecodable request", "error", err.Error())
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("old object: %w", err)), decisionError
		}
		in.OldSpec = old.spec
	}

	d := policy.Evaluate(h.policy(), in)
	for _, v := range d.Verdicts {
		h.metrics.verdicts.WithLabelValues(string(v.Check), string(v.Reason), string(v.Action)).Inc()
	}

	var resp admission.Response
	decision := decisionAllowed
	switch {
	case d.Denied():
		resp = admission.Denied(d.DenialMessage(describe(req, obj)))
		decision = decisionDenied
		log.Info("Denied", "kind", req.Kind.Kind, "reasons", reasons(d.ByAction(policy.ActionDeny)))
	case len(d.Patches) > 0:
		resp = admission.Allowed("")
		resp.Patches = make([]jsonpatch.JsonPatchOperation, len(d.Patches))
		for i, p := range d.Patches {
			resp.Patches[i] = jsonpatch.JsonPatchOperation{Operation: p.Op, Path: p.Path, Value: p.Value}
		}
		decision = decisionPatched
	default:
		resp = admission.Allowed("")
	}
	for _, v := range d.ByAction(policy.ActionWarn) {
		resp.Warnings = append(resp.Warnings, "bulwark: "+v.String())
	}
	if decision == decisionAllowed && len(resp.Warnings) > 0 {
		decision = decisionWarned
	}
	if h.stage == policy.StageValidate {
		resp.AuditAnnotations = auditAnnotations(decision, d.Verdicts)
	}
	return resp, decision
}

// auditAnnotations records the decision and, per check, what each verdict found.
// The API server prefixes each key with the webhook's name.
func auditAnnotations(decision string, verdicts []policy.Verdict) map[string]string {
	ann := map[string]string{"decision": decision}
	for _, v := range verdicts {
		key := string(v.Check)
		entry := fmt.Sprintf("%s %s at %s", v.Action, v.Reason, v.Path)
		if prev, ok := ann[key]; ok {
			entry = prev + "; " + entry
		}
		if len(entry) > maxAnnotationValue {
			entry = entry[:maxAnnotationValue-len("…")] + "…"
		}
		ann[key] = entry
	}
	return ann
}

// describe names the object as a user knows it: `Deployment "web"`, or for a pod a
// controller is creating, `Pod "web-7d9f8-" (generated name)`.
func describe(req admission.Request, obj *object) string {
	name := req.Name
	if name == "" {
		name = obj.meta.Name
	}
	if name == "" && obj.meta.GenerateName != "" {
		return fmt.Sprintf("%s %q (generated name)", req.Kind.Kind, obj.meta.GenerateName)
	}
	return fmt.Sprintf("%s %q", req.Kind.Kind, name)
}

func reasons(vs []policy.Verdict) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v.Reason) + "@" + v.Path
	}
	return strings.Join(out, ",")
}
