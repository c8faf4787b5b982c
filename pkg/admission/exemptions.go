package admission

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// exemptions is what the exemption annotations of a request amount to.
type exemptions struct {
	honoured   []*policy.Exemption
	rejections []policy.Rejection
}

// gatherExemptions parses the exemptions on the object's namespace, metadata and
// pod template, asks the API server whether the requester may grant them, verifies
// the grants that namespaces and workload controllers present, and lets policy
// decide which count.
func (h *Handler) gatherExemptions(ctx context.Context, req admission.Request, obj *object, p *policy.Policy, now time.Time) exemptions {
	var ex exemptions
	cfg := &p.Exemptions
	controller := cfg.IsWorkloadController(req.UserInfo.Username)
	consider := func(ann map[string]string, origin policy.Origin, verify func(*policy.Exemption) (string, error)) {
		e, rej := policy.ParseExemption(ann, origin, now, cfg)
		if rej != nil {
			ex.rejections = append(ex.rejections, *rej)
		}
		if e == nil {
			return
		}
		facts := policy.ExemptionFacts{Namespace: req.Namespace, Requester: req.UserInfo.Username}
		if origin != policy.OriginNamespace && !controller {
			missing, err := h.missingRight(ctx, req.UserInfo, req.Namespace, e.Checks())
			if err != nil {
				// Fail closed: a permission that cannot be checked is not held.
				ex.rejections = append(ex.rejections, policy.Rejection{Origin: origin, Cause: policy.RejectUnverifiable, Message: err.Error()})
				return
			}
			facts.Authorized, facts.MissingRight = missing == "", missing
			// Pods inherit a template's exemption only through its grant.
			facts.GrantRequired = origin == policy.OriginTemplate
		}
		if verify != nil && (origin == policy.OriginNamespace || controller || facts.GrantRequired) {
			facts.GrantedBy, facts.GrantErr = verify(e)
		}
		e, rej = policy.Honour(e, facts, cfg)
		if rej != nil {
			ex.rejections = append(ex.rejections, *rej)
			return
		}
		ex.honoured = append(ex.honoured, e)
	}

	if h.lookup != nil && req.Namespace != "" {
		ann, err := h.lookup.NamespaceAnnotations(ctx, req.Namespace)
		if err != nil {
			ex.rejections = append(ex.rejections, policy.Rejection{Origin: policy.OriginNamespace, Cause: policy.RejectUnverifiable,
				Message: fmt.Sprintf("read namespace %s: %v", req.Namespace, err)})
		} else {
			consider(ann, policy.OriginNamespace, func(e *policy.Exemption) (string, error) {
				return h.verify(namespaceSubject(req.Namespace), e, ann[policy.AnnotationExemptGrant])
			})
		}
	}
	switch {
	case obj.pod:
		consider(obj.meta.Annotations, policy.OriginObject, func(e *policy.Exemption) (string, error) {
			subject, err := h.podGrantSubject(ctx, req.Namespace, obj)
			if err != nil {
				return "", err
			}
			return h.verify(subject, e, obj.meta.Annotations[policy.AnnotationExemptGrant])
		})
	case !controller:
		// A workload's own metadata covers that object alone; controllers copy it
		// to what they create, where it means nothing, so they are not asked.
		consider(obj.meta.Annotations, policy.OriginObject, nil)
	}
	if obj.template != nil {
		consider(obj.template.Annotations, policy.OriginTemplate, func(e *policy.Exemption) (string, error) {
			return h.verify(workloadGrantSubject(req.Namespace, obj), e, obj.template.Annotations[policy.AnnotationExemptGrant])
		})
	}
	return ex
}

// missingRight returns the first check the user may not exempt in namespace, or "".
func (h *Handler) missingRight(ctx context.Context, user authUser, namespace string, checks []policy.CheckID) (policy.CheckID, error) {
	if h.authorizer == nil {
		return "", fmt.Errorf("bulwark has no access to the API server to check the permission")
	}
	for _, c := range checks {
		ok, err := h.authorizer.CanExempt(ctx, user, namespace, c)
		if err != nil {
			return "", fmt.Errorf("check permission to exempt %s: %w", c, err)
		}
		if !ok {
			return c, nil
		}
	}
	return "", nil
}

func (h *Handler) verify(subject policy.GrantSubject, e *policy.Exemption, grant string) (string, error) {
	if grant == "" {
		return "", fmt.Errorf("no %s: bulwark's mutating webhook writes it when a user allowed to grant the exemption admits the object", policy.AnnotationExemptGrant)
	}
	if len(h.grantKey) == 0 {
		return "", fmt.Errorf("bulwark has no grant key configured")
	}
	return policy.VerifyGrant(h.grantKey, subject, e, grant)
}

func namespaceSubject(ns string) policy.GrantSubject {
	return policy.GrantSubject{Namespace: ns, Kind: "Namespace", Name: ns}
}

// workloadGrantSubject is the workload a grant on a workload's template is bound
// to: for a ReplicaSet or Job made by a Deployment or CronJob, that owner (the
// request comes from its controller, which sets the owner truthfully; any other
// requester needs the right itself); otherwise the workload.
func workloadGrantSubject(namespace string, obj *object) policy.GrantSubject {
	if owner := metav1.GetControllerOfNoCopy(obj.meta); owner != nil && (owner.Kind == "Deployment" || owner.Kind == "CronJob") {
		return policy.GrantSubject{Namespace: namespace, Kind: owner.Kind, Name: owner.Name}
	}
	return policy.GrantSubject{Namespace: namespace, Kind: obj.kind, Name: obj.meta.Name}
}

// podGrantSubject finds the workload a pod's grant must be bound to: its
// controller, or that controller's own Deployment or CronJob, read from the API.
func (h *Handler) podGrantSubject(ctx context.Context, namespace string, obj *object) (policy.GrantSubject, error) {
	owner := metav1.GetControllerOfNoCopy(obj.meta)
	if owner == nil {
		return policy.GrantSubject{}, fmt.Errorf("pod has no controller owner to hold a grant")
	}
	if owner.Kind == "ReplicaSet" || owner.Kind == "Job" {
		if h.lookup == nil {
			return policy.GrantSubject{}, fmt.Errorf("bulwark has no access to the API server to find the owner of %s %s", owner.Kind, owner.Name)
		}
		parent, err := h.lookup.ControllerOf(ctx, namespace, owner.Kind, owner.Name)
		if err != nil {
			return policy.GrantSubject{}, fmt.Errorf("find the owner of %s %s: %w", owner.Kind, owner.Name, err)
		}
		if parent != nil && (parent.Kind == "Deployment" || parent.Kind == "CronJob") {
			return policy.GrantSubject{Namespace: namespace, Kind: parent.Kind, Name: parent.Name}, nil
		}
	}
	return policy.GrantSubject{Namespace: namespace, Kind: owner.Kind, Name: owner.Name}, nil
}

// grantPatch returns the JSONPatch that makes meta (at pointer) carry the right
// grant for subject: signed when the requester may grant the exemption written
// there; kept on an UPDATE that leaves grant and exemption as they were (removing
// it would roll a workload out); left alone on a workload controller's request;
// removed otherwise, so no request introduces a grant it did not earn.
func (h *Handler) grantPatch(ctx context.Context, req admission.Request, meta, oldMeta *metav1.ObjectMeta, pointer string, subject policy.GrantSubject, p *policy.Policy, now time.Time) []policy.Patch {
	if p.Exemptions.IsWorkloadController(req.UserInfo.Username) {
		return nil
	}
	present, has := meta.Annotations[policy.AnnotationExemptGrant]
	want := ""
	e, _ := policy.ParseExemption(meta.Annotations, policy.OriginTemplate, now, &p.Exemptions)
	switch {
	case unchangedGrant(meta, oldMeta):
		want = present
	case e != nil && len(h.grantKey) > 0 && subject.Name != "":
		if missing, err := h.missingRight(ctx, req.UserInfo, subject.Namespace, e.Checks()); err == nil && missing == "" {
			want = policy.SignGrant(h.grantKey, subject, e, req.UserInfo.Username)
		}
	}
	key := pointer + "/annotations/" + strings.ReplaceAll(policy.AnnotationExemptGrant, "/", "~1")
	switch {
	case want == present:
		return nil
	case want == "":
		return []policy.Patch{{Op: "remove", Path: key}}
	case meta.Annotations == nil:
		return []policy.Patch{{Op: "add", Path: pointer + "/annotations", Value: map[string]string{policy.AnnotationExemptGrant: want}}}
	case has:
		return []policy.Patch{{Op: "replace", Path: key, Value: want}}
	default:
		return []policy.Patch{{Op: "add", Path: key, Value: want}}
	}
}

// unchangedGrant reports whether an UPDATE keeps the grant and the exemption it
// signs exactly as the stored object had them.
func unchangedGrant(meta, old *metav1.ObjectMeta) bool {
	if old == nil || meta.Annotations[policy.AnnotationExemptGrant] == "" {
		return false
	}
	for _, k := range []string{policy.AnnotationExempt, policy.AnnotationExemptReason, policy.AnnotationExemptUntil, policy.AnnotationExemptGrant} {
		if meta.Annotations[k] != old.Annotations[k] {
			return false
		}
	}
	return true
}
