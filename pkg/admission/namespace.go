package admission

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

var namespaceGVK = corev1.SchemeGroupVersion.WithKind("Namespace")

// handleNamespace guards exemption annotations on Namespaces: whoever adds or
// changes them must hold the right to grant every check they name in that
// namespace, and they must be well formed. Everything else about a Namespace is
// none of bulwark's business.
func (h *Handler) handleNamespace(ctx context.Context, req admission.Request) (admission.Response, string) {
	var ns, old corev1.Namespace
	if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &ns); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode Namespace: %w", err)), DecisionError
	}
	if req.Operation == "UPDATE" {
		if err := kjson.UnmarshalCaseSensitivePreserveInts(req.OldObject.Raw, &old); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode old Namespace: %w", err)), DecisionError
		}
	}
	p := h.policy()
	if h.stage == policy.StageMutate {
		var oldMeta *metav1.ObjectMeta
		if req.Operation == "UPDATE" {
			oldMeta = &old.ObjectMeta
		}
		patches := h.grantPatch(ctx, req, &ns.ObjectMeta, oldMeta, "/metadata", namespaceSubject(ns.Name), p, h.now())
		if len(patches) == 0 {
			return admission.Allowed(""), DecisionAllowed
		}
		return patchResponse(patches), DecisionPatched
	}
	if !policy.HasExemption(ns.Annotations) || sameExemption(ns.Annotations, old.Annotations) {
		return admission.Allowed(""), DecisionAllowed
	}
	deny := func(cause policy.RejectCause, msg string) (admission.Response, string) {
		full := fmt.Sprintf("Namespace %q: %s", ns.Name, msg)
		resp := admission.Denied(full)
		resp.AuditAnnotations = map[string]string{"decision": DecisionDenied, "exemption-rejected": truncate(msg, maxAnnotationValue)}
		h.metrics.exemptions.WithLabelValues(string(policy.OriginNamespace), "rejected", string(cause)).Inc()
		logf.FromContext(ctx).Info("Decision", "kind", "Namespace", "name", ns.Name, "user", req.UserInfo.Username,
			"operation", req.Operation, "dryRun", isDryRun(req), "decision", DecisionDenied, "annotations", resp.AuditAnnotations)
		if h.events != nil && !isDryRun(req) {
			h.events.Record(Event{Regarding: corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: ns.Name, UID: ns.UID},
				Type: corev1.EventTypeWarning, Reason: EventExemptionRejected, Action: "Admission", Note: EventNote(full)})
		}
		return resp, DecisionDenied
	}
	e, rej := policy.ParseExemption(ns.Annotations, policy.OriginNamespace, h.now(), &p.Exemptions)
	if rej != nil {
		return deny(rej.Cause, rej.Message)
	}
	// The namespace a right is checked in is the one being annotated.
	missing, err := h.missingRight(ctx, req.UserInfo, ns.Name, e.Checks())
	if err != nil {
		return deny(policy.RejectUnverifiable, err.Error())
	}
	if missing != "" {
		return deny(policy.RejectUnauthorized, policy.Unauthorized(e, req.UserInfo.Username, ns.Name, missing).Message)
	}
	resp := admission.Allowed("")
	e.GrantedBy = req.UserInfo.Username
	resp.AuditAnnotations = map[string]string{"decision": DecisionAllowed, "exemption": truncate(exemptionSummary(e), maxAnnotationValue)}
	return resp, DecisionAllowed
}

func sameExemption(a, b map[string]string) bool {
	for _, k := range []string{policy.AnnotationExempt, policy.AnnotationExemptReason, policy.AnnotationExemptUntil} {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}
