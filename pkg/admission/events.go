package admission

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// recordEvents records what an auditor needs to see of a decision: the denial,
// each honoured exemption (and whether it ends soon), each refused exemption.
func (h *Handler) recordEvents(req admission.Request, obj *object, d policy.Decision, ex exemptions, p *policy.Policy, now time.Time, deniedControllerPod bool) {
	if h.events == nil {
		return
	}
	ref := regarding(req, obj, deniedControllerPod)
	emit := func(typ, reason, note string) {
		h.events.Record(Event{Regarding: ref, Type: typ, Reason: reason, Action: "Admission", Note: EventNote(note)})
	}
	if deny := d.ByAction(policy.ActionDeny); len(deny) > 0 {
		parts := make([]string, len(deny))
		for i, v := range deny {
			parts[i] = v.String()
		}
		emit(corev1.EventTypeWarning, string(deny[0].Reason), fmt.Sprintf("%s denied: %s", describe(req, obj), strings.Join(parts, "; ")))
	}
	for _, e := range ex.honoured {
		var used []string
		for _, v := range d.Verdicts {
			if v.Exemption == e {
				used = append(used, v.Path)
			}
		}
		emit(corev1.EventTypeNormal, EventPolicyExempted, fmt.Sprintf("%s admitted under exemption %s; exempted findings: %d %s",
			describe(req, obj), exemptionSummary(e), len(used), strings.Join(used, ", ")))
		if e.ExpiresWithin(now, p.Exemptions.ExpiringWindow.Duration) {
			emit(corev1.EventTypeWarning, EventExemptionExpiring, fmt.Sprintf("exemption %s ends in %s", exemptionSummary(e), e.Until.Sub(now).Round(time.Minute)))
		}
	}
	// Findings the policy's ignore rules accept are exemptions too.
	for _, v := range d.ByAction(policy.ActionExempt) {
		if e := v.Exemption; e != nil && e.Origin == policy.OriginPolicy {
			emit(corev1.EventTypeNormal, EventPolicyExempted, fmt.Sprintf("%s admitted with %s at %s accepted by the policy until %s (reason: %s)",
				describe(req, obj), v.Finding, v.Path, e.Until.UTC().Format(time.RFC3339), e.Reason))
		}
	}
	for _, r := range ex.rejections {
		emit(corev1.EventTypeWarning, EventExemptionRejected, fmt.Sprintf("%s: %s (%s)", describe(req, obj), r, r.Cause))
	}
}

// EventNote strips control characters and bounds the note to MaxEventNote
// bytes: notes carry text from images and users.
func EventNote(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return truncate(s, MaxEventNote)
}
