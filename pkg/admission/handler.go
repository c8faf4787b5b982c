package admission

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// Decisions: labels of the bulwark_admission_requests_total metric, values of the
// "decision" audit annotation and of Review.Decision.
const (
	DecisionAllowed = "allowed"
	DecisionPatched = "patched"
	DecisionWarned  = "warned"
	DecisionDenied  = "denied"
	DecisionError   = "error"
)

// maxAnnotationValue bounds each audit annotation value.
const maxAnnotationValue = 1024

// Options configure a Handler. Stage, Policy and Metrics are required. Without an
// Authorizer no exemption that needs the requester's right is honoured; without a
// Lookup namespace exemptions are not read; without Events none are recorded.
type Options struct {
	Stage policy.Stage
	// Policy returns the policy in force; it is called once per request.
	Policy     func() *policy.Policy
	Metrics    *Metrics
	Authorizer Authorizer
	Lookup     Lookup
	Events     EventRecorder
	// GrantKey signs and verifies exemption grants (HMAC-SHA256).
	GrantKey []byte
	// Now defaults to time.Now.
	Now func() time.Time
	// Budget bounds the work on one request, so bulwark answers before the API
	// server's webhook timeout. Defaults to DefaultBudget.
	Budget time.Duration
	// Verifier verifies image signatures; without it every image the signature
	// check judges is denied as unverified.
	Verifier verify.Verifier
	// Inspector reads the base an image declares; without it every image the
	// base-image check judges is denied as unread.
	Inspector verify.Inspector
	// Scans gives images' scan state; without it every image the
	// vulnerabilities check judges counts as not scanned.
	Scans Scans
	// Resolver resolves tags (pinning: resolve); without it tags stay unresolved.
	Resolver Resolver
	// Keychains gives pods' registry credentials; without it registries are
	// accessed anonymously.
	Keychains Keychains
}

// DefaultBudget leaves a safety margin under the webhook configurations'
// timeoutSeconds of 10.
const DefaultBudget = 8 * time.Second

// Handler admits objects in one stage (mutate or validate) under a policy.
type Handler struct {
	stage      policy.Stage
	policy     func() *policy.Policy
	metrics    *Metrics
	authorizer Authorizer
	lookup     Lookup
	events     EventRecorder
	grantKey   []byte
	now        func() time.Time
	budget     time.Duration
	verifier   verify.Verifier
	inspector  verify.Inspector
	scans      Scans
	resolver   Resolver
	keychains  Keychains
	log        logr.Logger
}

// NewHandler returns a handler configured by o.
func NewHandler(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	return &Handler{stage: o.Stage, policy: o.Policy, metrics: o.Metrics, authorizer: o.Authorizer,
		lookup: o.Lookup, events: o.Events, grantKey: o.GrantKey, now: o.Now, budget: o.Budget,
		verifier: o.Verifier, inspector: o.Inspector, scans: o.Scans, resolver: o.Resolver, keychains: o.Keychains,
		log: logf.Log.WithName(string(o.Stage))}
}

var _ admission.Handler = (*Handler)(nil)

// Webhook returns h as the http.Handler of its endpoint (see ServeHTTP).
func (h *Handler) Webhook() http.Handler { return h }

// Review is a decision with the findings behind it, for callers that render them
// themselves (the bulwark CLI).
type Review struct {
	Response   admission.Response
	Decision   string
	Verdicts   []policy.Verdict
	Rejections []policy.Rejection
	Patches    []policy.Patch
}

// Handle decides one admission request.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	return h.Review(ctx, req).Response
}

// Review decides one admission request and returns the findings with the response.
func (h *Handler) Review(ctx context.Context, req admission.Request) Review {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, h.budget)
	defer cancel()
	var rv Review
	resp, decision := h.handle(ctx, req, &rv)
	if h.stage == policy.StageValidate && resp.AuditAnnotations == nil {
		resp.AuditAnnotations = map[string]string{"decision": decision}
	}
	h.metrics.duration.WithLabelValues(string(h.stage)).Observe(time.Since(start).Seconds())
	h.metrics.requests.WithLabelValues(string(h.stage), kindLabel(req), operationLabel(req), decision).Inc()
	rv.Response, rv.Decision = resp, decision
	return rv
}

func (h *Handler) handle(ctx context.Context, req admission.Request, rv *Review) (admission.Response, string) {
	log := logf.FromContext(ctx)
	var op policy.Operation
	switch req.Operation {
	case admissionv1.Create:
		op = policy.OperationCreate
	case admissionv1.Update:
		op = policy.OperationUpdate
	case admissionv1.Delete, admissionv1.Connect:
		// They start nothing new.
		return admission.Allowed(""), DecisionAllowed
	default:
		// Fail closed: a request without a known operation is not a real review.
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unsupported operation %q", req.Operation)), DecisionError
	}
	if req.SubResource != "" && req.SubResource != "ephemeralcontainers" {
		// Status and other subresources cannot change what runs.
		return admission.Allowed(""), DecisionAllowed
	}
	gvk := schema.GroupVersionKind(req.Kind)
	if gvk == namespaceGVK {
		return h.handleNamespace(ctx, req)
	}

	obj, err := decodeObject(gvk, req.Object.Raw)
	if err != nil {
		// Fail closed: what bulwark cannot read, it does not admit.
		log.Info("Rejected undecodable request", "error", err.Error())
		return admission.Errored(http.StatusBadRequest, err), DecisionError
	}
	if obj.spec == nil {
		return admission.Allowed(""), DecisionAllowed
	}
	p := h.policy()
	now := h.now()
	in := &policy.Input{Stage: h.stage, Operation: op, Pod: obj.pod, Spec: obj.spec, SpecPath: obj.specPath, Namespace: req.Namespace, Now: now}
	var old *object
	if op == policy.OperationUpdate {
		old, err = decodeObject(gvk, req.OldObject.Raw)
		if err != nil {
			log.Info("Rejected undecodable request", "error", err.Error())
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("old object: %w", err)), DecisionError
		}
		in.OldSpec = old.spec
		in.ExemptionsChanged = exemptionAnnotationsDiffer(obj, old)
	}
	if !policy.NeedsJudgement(in) {
		return admission.Allowed(""), DecisionAllowed
	}
	var resolveWarnings []string
	if h.stage == policy.StageMutate {
		in.Resolved, resolveWarnings = h.resolveTags(ctx, req, obj, p, in)
	} else {
		h.imageFacts(ctx, req, obj, p, in)
	}
	d := policy.Evaluate(p, in)
	var ex exemptions
	if h.stage == policy.StageValidate && len(d.ByAction(policy.ActionDeny))+len(d.ByAction(policy.ActionWarn)) > 0 {
		// Exemptions matter only for findings that would deny or warn; looking
		// them up costs access reviews.
		ex = h.gatherExemptions(ctx, req, obj, p, now)
		in.Exemptions = ex.honoured
		d = policy.Evaluate(p, in)
	} else if h.stage == policy.StageValidate {
		// Still tell the user about an exemption that is malformed, incomplete or
		// expired: that needs no access review.
		ex.rejections = malformedExemptions(obj, p, now)
	}
	if h.stage == policy.StageMutate {
		d.Patches = append(d.Patches, h.mutateGrant(ctx, req, obj, old, p, now)...)
	}
	for _, v := range d.Verdicts {
		h.metrics.verdicts.WithLabelValues(string(v.Check), string(v.Reason), string(v.Action)).Inc()
	}
	rv.Verdicts, rv.Rejections, rv.Patches = d.Verdicts, ex.rejections, d.Patches

	var resp admission.Response
	decision, denied := DecisionAllowed, false
	switch {
	case d.Denied():
		denied = true
		msg := d.DenialMessage(describe(req, obj))
		for _, r := range ex.rejections {
			// The user reads why an exemption they meant did not help.
			msg += "\n- " + r.String()
		}
		resp = admission.Denied(msg)
		decision = DecisionDenied
	case len(d.Patches) > 0:
		resp = patchResponse(d.Patches)
		decision = DecisionPatched
	default:
		resp = admission.Allowed("")
	}
	if h.stage != policy.StageValidate {
		resp.Warnings = append(resp.Warnings, resolveWarnings...)
		return resp, decision
	}

	// The validating pass reports; the mutating pass would only repeat it.
	for _, r := range ex.rejections {
		resp.Warnings = append(resp.Warnings, "bulwark: "+r.String())
		h.metrics.exemptions.WithLabelValues(string(r.Origin), "rejected", string(r.Cause)).Inc()
	}
	for _, e := range ex.honoured {
		h.metrics.exemptions.WithLabelValues(string(e.Origin), "honoured", "").Inc()
	}
	for _, v := range d.ByAction(policy.ActionWarn) {
		resp.Warnings = append(resp.Warnings, "bulwark: "+v.String())
	}
	if decision == DecisionAllowed && len(resp.Warnings) > 0 {
		decision = DecisionWarned
	}
	resp.AuditAnnotations = auditAnnotations(decision, d.Verdicts, ex, obj.spec)
	log.Info("Decision", "kind", req.Kind.Kind, "namespace", req.Namespace, "name", describeName(req, obj),
		"user", req.UserInfo.Username, "operation", req.Operation, "dryRun", isDryRun(req),
		"decision", decision, "annotations", resp.AuditAnnotations)
	if !isDryRun(req) {
		h.recordEvents(req, obj, d, ex, p, now, denied && op == policy.OperationCreate && p.Exemptions.IsWorkloadController(req.UserInfo.Username))
	}
	return resp, decision
}

func isDryRun(req admission.Request) bool { return req.DryRun != nil && *req.DryRun }

// auditAnnotations records the decision, per check what each verdict found, the
// exemptions used and refused, and the images. The API server prefixes each key
// with the webhook's name.
func auditAnnotations(decision string, verdicts []policy.Verdict, ex exemptions, spec *corev1.PodSpec) map[string]string {
	ann := map[string]string{"decision": decision}
	add := func(key, entry string) {
		if prev, ok := ann[key]; ok {
			entry = prev + "; " + entry
		}
		ann[key] = truncate(entry, maxAnnotationValue)
	}
	for _, v := range verdicts {
		add(string(v.Check), fmt.Sprintf("%s %s at %s", v.Action, v.Reason, v.Path))
	}
	for _, e := range ex.honoured {
		add("exemption", exemptionSummary(e))
	}
	for _, r := range ex.rejections {
		add("exemption-rejected", fmt.Sprintf("%s on the %s", r.Cause, r.Origin))
	}
	var images []string
	policy.EachImage(spec, nil, func(image string, _ *field.Path) { images = append(images, image) })
	add("images", strings.Join(images, ","))
	return ann
}

func exemptionSummary(e *policy.Exemption) string {
	targets := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		targets[i] = t.String()
	}
	return fmt.Sprintf("%s on the %s granted by %s until %s (reason: %s)",
		strings.Join(targets, ","), e.Origin, e.GrantedBy, e.Until.UTC().Format(time.RFC3339), e.Reason)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-len("…")], "") + "…"
}

// describe names the object as a user knows it: `Deployment "web"`, or for a pod a
// controller is creating, `Pod "web-7d9f8-" (generated name)`.
func describe(req admission.Request, obj *object) string {
	if name := describeName(req, obj); name != "" || obj.meta.GenerateName == "" {
		return fmt.Sprintf("%s %q", req.Kind.Kind, name)
	}
	return fmt.Sprintf("%s %q (generated name)", req.Kind.Kind, obj.meta.GenerateName)
}

func describeName(req admission.Request, obj *object) string {
	if req.Name != "" {
		return req.Name
	}
	return obj.meta.Name
}

// regarding is the object an Event is about: the object itself, or for a pod a
// workload controller tried to create and bulwark denied (so it is never stored),
// its owner, where the controller's own events already are. Only a controller's
// word on ownership is taken: anyone else's pod is the subject of its own Events.
func regarding(req admission.Request, obj *object, deniedControllerPod bool) corev1.ObjectReference {
	name := describeName(req, obj)
	if owner := metav1.GetControllerOfNoCopy(obj.meta); owner != nil && obj.pod && deniedControllerPod {
		return corev1.ObjectReference{APIVersion: owner.APIVersion, Kind: owner.Kind, Namespace: req.Namespace, Name: owner.Name, UID: owner.UID}
	}
	if name == "" {
		name = obj.meta.GenerateName
	}
	return corev1.ObjectReference{
		APIVersion: schema.GroupVersion{Group: req.Kind.Group, Version: req.Kind.Version}.String(),
		Kind:       req.Kind.Kind, Namespace: req.Namespace, Name: name, UID: obj.meta.UID,
	}
}

// exemptionAnnotationsDiffer reports whether an update changes the exemption
// annotations or the grant of the object or its pod template.
func exemptionAnnotationsDiffer(obj, old *object) bool {
	keys := []string{policy.AnnotationExempt, policy.AnnotationExemptReason, policy.AnnotationExemptUntil, policy.AnnotationExemptGrant}
	differ := func(a, b *metav1.ObjectMeta) bool {
		for _, k := range keys {
			if a == nil || b == nil {
				return a != b
			}
			if a.Annotations[k] != b.Annotations[k] {
				return true
			}
		}
		return false
	}
	return differ(obj.meta, old.meta) || differ(obj.template, old.template)
}

// mutateGrant manages bulwark's exemption grant: on a workload's pod template it is
// signed, kept or removed (grantPatch); a pod never gets one from anyone but a
// workload controller, which copies it from the template.
func (h *Handler) mutateGrant(ctx context.Context, req admission.Request, obj, old *object, p *policy.Policy, now time.Time) []policy.Patch {
	if obj.pod {
		if _, has := obj.meta.Annotations[policy.AnnotationExemptGrant]; has && !p.Exemptions.IsWorkloadController(req.UserInfo.Username) {
			return []policy.Patch{{Op: "remove", Path: "/metadata/annotations/" + strings.ReplaceAll(policy.AnnotationExemptGrant, "/", "~1")}}
		}
		return nil
	}
	if obj.template == nil {
		return nil
	}
	var oldTemplate *metav1.ObjectMeta
	if old != nil {
		oldTemplate = old.template
	}
	// Bound to the same workload the validating pass verifies against.
	subject := workloadGrantSubject(req.Namespace, obj)
	return h.grantPatch(ctx, req, obj.template, oldTemplate, templateMetaPointer[obj.kind], subject, p, now)
}

// kindLabel and operationLabel keep metric labels to known values, whatever a
// caller sends.
func kindLabel(req admission.Request) string {
	gvk := schema.GroupVersionKind(req.Kind)
	if _, ok := kinds[gvk]; ok || gvk == namespaceGVK {
		return gvk.Kind
	}
	return "other"
}

func operationLabel(req admission.Request) string {
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect:
		return string(req.Operation)
	}
	return "other"
}

func patchResponse(patches []policy.Patch) admission.Response {
	resp := admission.Allowed("")
	resp.Patches = make([]jsonpatch.JsonPatchOperation, len(patches))
	for i, p := range patches {
		resp.Patches[i] = jsonpatch.JsonPatchOperation{Operation: p.Op, Path: p.Path, Value: p.Value}
	}
	return resp
}

// malformedExemptions returns the exemptions on obj that fail to parse.
func malformedExemptions(obj *object, p *policy.Policy, now time.Time) []policy.Rejection {
	var out []policy.Rejection
	check := func(meta *metav1.ObjectMeta, origin policy.Origin) {
		if meta == nil || !policy.HasExemption(meta.Annotations) {
			return
		}
		if _, rej := policy.ParseExemption(meta.Annotations, origin, now, &p.Exemptions); rej != nil {
			out = append(out, *rej)
		}
	}
	check(obj.meta, policy.OriginObject)
	check(obj.template, policy.OriginTemplate)
	return out
}
