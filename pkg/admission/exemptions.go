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
	// template is the honoured exemption of a workload's pod template granted by
	// the requester, which the mutating pass signs into a grant.
	template *policy.Exemption
}

// gatherExemptions parses the exemptions on the object's namespace, metadata and
// pod template, asks the API server whether the requester may grant them, verifies
// any grant a workload controller presents, and lets policy decide which count.
func (h *Handler) gatherExemptions(ctx context.Context, req admission.Request, obj *object, p *policy.Policy, now time.Time) exemptions {
	var ex exemptions
	cfg := &p.Exemptions
	consider := func(ann map[string]string, origin policy.Origin, grantMeta *metav1.ObjectMeta) {
		e, rej := policy.ParseExemption(ann, origin, now, cfg)
		if rej != nil {
			ex.rejections = append(ex.rejections, *rej)
		}
		if e == nil {
			return
		}
		facts := policy.ExemptionFacts{Namespace: req.Namespace, Requester: req.UserInfo.Username}
		switch {
		case origin == policy.OriginNamespace:
		case cfg.IsWorkloadController(req.UserInfo.Username):
			// Controllers act for a workload: they prove its grant, never a right of
			// their own, so no access review is spent on them.
			facts.GrantedBy, facts.GrantErr = h.verifyGrant(ctx, req.Namespace, obj, e, grantMeta)
		default:
			ok, err := h.canExemptAll(ctx, req, e.Checks())
			if err != nil {
				// Fail closed: a permission that cannot be checked is not held.
				ex.rejections = append(ex.rejections, policy.Rejection{Origin: origin, Cause: policy.RejectUnverifiable, Message: err.Error()})
				return
			}
			facts.Authorized = ok
		}
		e, rej = policy.Honour(e, facts, cfg)
		if rej != nil {
			ex.rejections = append(ex.rejections, *rej)
			return
		}
		ex.honoured = append(ex.honoured, e)
		if origin == policy.OriginTemplate && facts.Authorized {
			ex.template = e
		}
	}

	if h.lookup != nil && req.Namespace != "" {
		ann, err := h.lookup.NamespaceAnnotations(ctx, req.Namespace)
		if err != nil {
			ex.rejections = append(ex.rejections, policy.Rejection{Origin: policy.OriginNamespace, Cause: policy.RejectUnverifiable,
				Message: fmt.Sprintf("read namespace %s: %v", req.Namespace, err)})
		} else {
			consider(ann, policy.OriginNamespace, nil)
		}
	}
	if obj.pod {
		consider(obj.meta.Annotations, policy.OriginObject, obj.meta)
	} else {
		consider(obj.meta.Annotations, policy.OriginObject, nil)
	}
	if obj.template != nil {
		consider(obj.template.Annotations, policy.OriginTemplate, obj.template)
	}
	return ex
}

func (h *Handler) canExemptAll(ctx context.Context, req admission.Request, checks []policy.CheckID) (bool, error) {
	if h.authorizer == nil {
		return false, fmt.Errorf("bulwark has no access to the API server to check the permission")
	}
	for _, c := range checks {
		ok, err := h.authorizer.CanExempt(ctx, req.UserInfo, req.Namespace, c)
		if err != nil {
			return false, fmt.Errorf("check permission to exempt %s: %w", c, err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// verifyGrant checks the grant in meta against the workload that owns obj.
func (h *Handler) verifyGrant(ctx context.Context, namespace string, obj *object, e *policy.Exemption, meta *metav1.ObjectMeta) (string, error) {
	if meta == nil {
		return "", fmt.Errorf("exemptions on a workload's own metadata do not carry over; put them on its pod template")
	}
	grant := meta.Annotations[policy.AnnotationExemptGrant]
	if grant == "" {
		return "", fmt.Errorf("no %s: the workload was not admitted with this exemption by a user allowed to grant it", policy.AnnotationExemptGrant)
	}
	if len(h.grantKey) == 0 {
		return "", fmt.Errorf("bulwark has no grant key configured")
	}
	subject, err := h.grantSubject(ctx, namespace, obj)
	if err != nil {
		return "", err
	}
	return policy.VerifyGrant(h.grantKey, subject, e, grant)
}

// grantSubject finds the workload a grant on obj must be bound to: for a Pod its
// controller, or that controller's own Deployment or CronJob; for a ReplicaSet or
// Job made by a Deployment or CronJob, that owner; otherwise obj itself.
func (h *Handler) grantSubject(ctx context.Context, namespace string, obj *object) (policy.GrantSubject, error) {
	owner := metav1.GetControllerOfNoCopy(obj.meta)
	if !obj.pod {
		if owner != nil && (owner.Kind == "Deployment" || owner.Kind == "CronJob") {
			return policy.GrantSubject{Namespace: namespace, Kind: owner.Kind, Name: owner.Name}, nil
		}
		return policy.GrantSubject{Namespace: namespace, Kind: obj.kind, Name: obj.meta.Name}, nil
	}
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

// grantPatch returns the JSONPatch that makes a workload's pod template carry the
// right grant: signed for an exemption the requester may grant, kept when it still
// verifies for this workload, left alone on a controller's request, and removed
// otherwise, so no request passes on a grant it did not earn.
func (h *Handler) grantPatch(req admission.Request, obj *object, ex exemptions, p *policy.Policy) []policy.Patch {
	meta := obj.meta
	pointer := templateMetaPointer[obj.kind]
	if obj.pod {
		pointer = "/metadata"
	} else if obj.template == nil {
		return nil
	} else {
		meta = obj.template
	}
	present, has := meta.Annotations[policy.AnnotationExemptGrant]
	want := ""
	subject := policy.GrantSubject{Namespace: req.Namespace, Kind: obj.kind, Name: obj.meta.Name}
	switch {
	case p.Exemptions.IsWorkloadController(req.UserInfo.Username):
		return nil
	case !obj.pod && ex.template != nil && obj.meta.Name != "" && len(h.grantKey) > 0:
		want = policy.SignGrant(h.grantKey, subject, ex.template, req.UserInfo.Username)
	case has && !obj.pod && len(h.grantKey) > 0:
		// Kept while it matches this workload and exemption, even expired: removing
		// it would change the pod template and roll the workload out.
		if _, err := policy.VerifyGrantAnnotations(h.grantKey, subject, meta.Annotations, present); err == nil {
			want = present
		}
	}
	key := pointer + "/annotations/" + strings.ReplaceAll(policy.AnnotationExemptGrant, "/", "~1")
	switch {
	case want == present && (has || want == ""):
		return nil
	case want == "":
		return []policy.Patch{{Op: "remove", Path: key}}
	case meta.Annotations == nil:
		return []policy.Patch{{Op: "add", Path: pointer + "/annotations", Value: map[string]string{policy.AnnotationExemptGrant: want}}}
	default:
		return []policy.Patch{{Op: "add", Path: key, Value: want}}
	}
}
