package check

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"encoding/json"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	bulwarkadmission "github.com/bulwark-dev/bulwark/pkg/admission"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// Outcomes of a document.
const (
	Admitted = "admitted"
	Warned   = "warned"
	Denied   = "denied"
	Skipped  = "skipped" // a Kubernetes kind bulwark does not gate
)

// Options configure a Checker.
type Options struct {
	// User is who the objects are checked as. Default "ci".
	User string
	// ExemptRight assumes User may grant every exemption (as an operator applying
	// the manifests would); otherwise exemptions are judged as for a user without
	// the right, which is what most CI pipelines apply as.
	ExemptRight bool
	// Now defaults to time.Now; exemption expiry is judged against it.
	Now func() time.Time
	// Namespace is used for objects that name none. Default "default".
	Namespace string
	// Verifier, Inspector, Resolver and Keychains give the signature and
	// base-image checks (and tag resolution) registry access; Scans gives the
	// vulnerabilities check scans. Nil: those checks have nothing to decide on
	// and fail closed, so callers disable them in the policy instead.
	Verifier  verify.Verifier
	Inspector verify.Inspector
	Resolver  bulwarkadmission.Resolver
	Keychains bulwarkadmission.Keychains
	Scans     bulwarkadmission.Scans
}

// checkBudget bounds the work on one document.
const checkBudget = 10 * time.Minute

// Checker decides documents with the webhook's own handlers.
type Checker struct {
	mutate, validate *bulwarkadmission.Handler
	user, namespace  string
}

// NewChecker returns a Checker for policy p.
func NewChecker(p *policy.Policy, o Options) (*Checker, error) {
	if o.User == "" {
		o.User = "ci"
	}
	if o.Namespace == "" {
		o.Namespace = metav1.NamespaceDefault
	}
	key := make([]byte, 32) // grants live only within this run
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	base := bulwarkadmission.Options{
		Policy:     func() *policy.Policy { return p },
		Metrics:    bulwarkadmission.NewMetrics(prometheus.NewRegistry()),
		Authorizer: fixedRight(o.ExemptRight),
		GrantKey:   key,
		Now:        o.Now,
		Verifier:   o.Verifier,
		Inspector:  o.Inspector,
		Resolver:   o.Resolver,
		Keychains:  o.Keychains,
		Scans:      o.Scans,
		// No API server waits for the CLI: registry calls and scans take what
		// they take, within reason.
		Budget: checkBudget,
	}
	mutate, validate := base, base
	mutate.Stage, validate.Stage = policy.StageMutate, policy.StageValidate
	return &Checker{mutate: bulwarkadmission.NewHandler(mutate), validate: bulwarkadmission.NewHandler(validate), user: o.User, namespace: o.Namespace}, nil
}

type fixedRight bool

func (f fixedRight) CanExempt(context.Context, authenticationv1.UserInfo, string, policy.CheckID) (bool, error) {
	return bool(f), nil
}

// Finding is one verdict or refused exemption, placed in its file.
type Finding struct {
	Check   string `json:"check"`
	Reason  string `json:"reason"`
	Action  string `json:"action"`
	Path    string `json:"path"`
	Line    int    `json:"line"`
	Message string `json:"message"`
	// Exemption says which honoured exemption covers the finding (action exempt).
	Exemption string `json:"exemption,omitempty"`
}

// Result is the decision on one document.
type Result struct {
	File      string    `json:"file"`
	Document  int       `json:"document"`
	Item      int       `json:"item,omitempty"`
	Line      int       `json:"line"`
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	Outcome   string    `json:"outcome"`
	Message   string    `json:"message,omitempty"`
	Warnings  []string  `json:"warnings,omitempty"`
	Findings  []Finding `json:"findings,omitempty"`
}

// Check decides d as the webhook would on CREATE: the mutating pass, its patch
// applied, then the validating pass. An unknown kind is an InputError.
func (c *Checker) Check(ctx context.Context, d *Document) (r *Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			r, err = nil, &InputError{File: d.File, Index: d.Index, Err: fmt.Errorf("internal error: %v", v)}
		}
	}()
	return c.check(ctx, d)
}

func (c *Checker) check(ctx context.Context, d *Document) (*Result, error) {
	gvk := schema.FromAPIVersionAndKind(d.APIVersion, d.Kind)
	r := &Result{File: d.File, Document: d.Index + 1, Line: d.Line, Kind: d.Kind, Namespace: d.Namespace, Name: d.Name}
	if d.Item >= 0 {
		r.Item = d.Item + 1
	}
	if !bulwarkadmission.Gates(gvk) {
		switch {
		case bulwarkadmission.GatesKind(gvk.Group, gvk.Kind):
			// Fail closed: an old or unknown version of a kind bulwark judges.
			return nil, &InputError{File: d.File, Index: d.Index, Err: fmt.Errorf("%s %s is not a version bulwark judges (nor, for removed versions, one the API server serves)", d.APIVersion, d.Kind)}
		case scheme.Scheme.Recognizes(gvk):
			r.Outcome = Skipped
			return r, nil
		}
		return nil, &InputError{File: d.File, Index: d.Index, Err: fmt.Errorf("unknown kind %s %s: bulwark cannot judge it", d.APIVersion, d.Kind)}
	}
	ns := d.Namespace
	if ns == "" {
		ns = c.namespace
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       types.UID(fmt.Sprintf("check-%d-%d", d.Index, d.Item)),
		Kind:      metav1.GroupVersionKind(gvk),
		Namespace: ns, Name: d.Name,
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: c.user},
		Object:    runtime.RawExtension{Raw: d.JSON},
	}}
	m := c.mutate.Review(ctx, req)
	if !m.Response.Allowed {
		return nil, &InputError{File: d.File, Index: d.Index, Err: fmt.Errorf("%s", m.Response.Result.Message)}
	}
	if len(m.Patches) > 0 {
		patched, err := applyPatches(d.JSON, m.Patches)
		if err != nil {
			return nil, &InputError{File: d.File, Index: d.Index, Err: err}
		}
		req.Object.Raw = patched
	}
	v := c.validate.Review(ctx, req)
	switch {
	case v.Decision == bulwarkadmission.DecisionError:
		return nil, &InputError{File: d.File, Index: d.Index, Err: fmt.Errorf("%s", v.Response.Result.Message)}
	case !v.Response.Allowed:
		r.Outcome, r.Message = Denied, v.Response.Result.Message
	case len(v.Response.Warnings) > 0:
		r.Outcome = Warned
	default:
		r.Outcome = Admitted
	}
	r.Warnings = v.Response.Warnings
	for _, vd := range v.Verdicts {
		f := Finding{Check: string(vd.Check), Reason: string(vd.Reason), Action: string(vd.Action),
			Path: vd.Path, Line: d.LineOf(vd.Path), Message: vd.String()}
		if e := vd.Exemption; e != nil {
			f.Exemption = fmt.Sprintf("exempted on the %s by %s until %s (reason: %s)", e.Origin, e.GrantedBy, e.Until.UTC().Format(time.RFC3339), e.Reason)
		}
		r.Findings = append(r.Findings, f)
	}
	for _, rej := range v.Rejections {
		path := "metadata.annotations"
		if rej.Origin == policy.OriginTemplate {
			path = strings.TrimSuffix(templatePath(d.Kind), ".spec") + ".metadata.annotations"
		}
		r.Findings = append(r.Findings, Finding{Check: "exemption", Reason: string(rej.Cause), Action: "warn",
			Path: path, Line: d.LineOf(path), Message: rej.String()})
	}
	return r, nil
}

func templatePath(kind string) string {
	switch kind {
	case "CronJob":
		return "spec.jobTemplate.spec.template.spec"
	case "PodTemplate":
		return "template.spec"
	}
	return "spec.template.spec"
}

func applyPatches(doc []byte, patches []policy.Patch) ([]byte, error) {
	raw, err := json.Marshal(patches)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("decode bulwark's own patch: %w", err)
	}
	return p.Apply(doc)
}
