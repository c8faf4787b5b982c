package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	// APIVersion and Kind identify a bulwark policy file.
	APIVersion = "bulwark.dev/v1alpha1"
	Kind       = "Policy"

	// MaxPolicyBytes bounds the size of a policy file.
	MaxPolicyBytes = 1 << 20

	maxExemptionWindow = 366 * 24 * time.Hour
)

// Policy is the operator's configuration of every check. Defaults returns the
// documented defaults; a policy file only needs the fields it changes.
type Policy struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Checks     Checks          `json:"checks"`
	Exemptions ExemptionConfig `json:"exemptions"`
	Registry   RegistryConfig  `json:"registry"`
}

// ExemptionConfig governs exemptions granted through annotations.
type ExemptionConfig struct {
	// MaxWindow is how far ahead bulwark.dev/exempt-until may be. Default 90 days.
	MaxWindow metav1.Duration `json:"maxWindow"`
	// ExpiringWindow: an honoured exemption ending within it raises an
	// ExemptionExpiring Event. Default 7 days.
	ExpiringWindow metav1.Duration `json:"expiringWindow"`
	// WorkloadControllers are the users that create pods and workloads on behalf
	// of a workload; they may present the grant of the workload that owns what they
	// create. Default: the kube-controller-manager's workload controllers.
	WorkloadControllers []string `json:"workloadControllers"`
}

// IsWorkloadController reports whether user is one of the workload controllers.
func (c *ExemptionConfig) IsWorkloadController(user string) bool {
	return slices.Contains(c.WorkloadControllers, user)
}

// DefaultWorkloadControllers are the kube-controller-manager identities that create
// ReplicaSets, Jobs and Pods for workloads (with --use-service-account-credentials).
var DefaultWorkloadControllers = []string{
	"system:serviceaccount:kube-system:cronjob-controller",
	"system:serviceaccount:kube-system:daemon-set-controller",
	"system:serviceaccount:kube-system:deployment-controller",
	"system:serviceaccount:kube-system:job-controller",
	"system:serviceaccount:kube-system:replicaset-controller",
	"system:serviceaccount:kube-system:replication-controller",
	"system:serviceaccount:kube-system:statefulset-controller",
}

// Checks holds the configuration of each check.
type Checks struct {
	Digest    DigestConfig    `json:"digest"`
	Hardening HardeningConfig `json:"hardening"`
	Signature SignatureConfig `json:"signature"`
	BaseImage BaseImageConfig `json:"baseImage"`
	// Vulnerabilities configures the vulnerabilities check.
	Vulnerabilities VulnerabilitiesConfig `json:"vulnerabilities"`
}

// Pinning says how images get their digest.
type Pinning string

const (
	// PinningRequire: an image without a digest is denied.
	PinningRequire Pinning = "require"
	// PinningResolve: the mutating pass resolves repo:tag once to
	// repo:tag@sha256:… and patches it in; the validating pass still requires
	// the digest.
	PinningResolve Pinning = "resolve"
)

// DigestConfig configures the digest check.
type DigestConfig struct {
	// Mode defaults to enforce.
	Mode Mode `json:"mode"`
	// Pinning defaults to require.
	Pinning Pinning `json:"pinning"`
}

// HardeningConfig configures the hardening injected into pods. Each control is added
// only where a container leaves it unset; a value the user set explicitly that
// contradicts it is reported with Mode (enforce: denied, warn: warned, audit: recorded).
type HardeningConfig struct {
	// Mode defaults to enforce.
	Mode Mode `json:"mode"`
	// DropAllCapabilities adds ALL to securityContext.capabilities.drop. Default true.
	DropAllCapabilities bool `json:"dropAllCapabilities"`
	// ReadOnlyRootFilesystem sets securityContext.readOnlyRootFilesystem. Default true.
	ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem"`
	// DisallowPrivilegeEscalation sets securityContext.allowPrivilegeEscalation to
	// false. Default true.
	DisallowPrivilegeEscalation bool `json:"disallowPrivilegeEscalation"`
	// SeccompRuntimeDefault sets securityContext.seccompProfile.type to RuntimeDefault
	// where neither the container nor the pod chose a profile. Default true.
	SeccompRuntimeDefault bool `json:"seccompRuntimeDefault"`
	// TmpEmptyDir mounts an emptyDir at /tmp in every container that becomes read-only
	// and does not mount /tmp already. Default false.
	TmpEmptyDir bool `json:"tmpEmptyDir"`
}

// Defaults returns the documented default policy: every check enforced, every
// hardening control on except the /tmp emptyDir.
func Defaults() Policy {
	return Policy{
		APIVersion: APIVersion,
		Kind:       Kind,
		Checks: Checks{
			Digest: DigestConfig{Mode: ModeEnforce, Pinning: PinningRequire},
			Signature: SignatureConfig{
				Mode:      ModeEnforce,
				NoMatch:   OutcomeDeny,
				Rules:     []TrustRule{},
				CacheTTL:  metav1.Duration{Duration: DefaultSignatureCacheTTL},
				MultiArch: MultiArchIndex,
			},
			BaseImage: BaseImageConfig{Mode: ModeEnforce, Approved: []string{}, Undeclared: OutcomeAllow},
			Vulnerabilities: VulnerabilitiesConfig{
				Mode: ModeEnforce, Images: []string{"**"}, Threshold: "Critical", Ignore: []IgnoreRule{}, Namespaces: []NamespaceThreshold{},
				Pending: OutcomeDeny, MaxDBAge: metav1.Duration{Duration: DefaultMaxDBAge}, StaleDB: OutcomeDeny,
				StaleScanWindow: metav1.Duration{Duration: DefaultStaleScanWindow}, Platforms: []string{"linux/amd64", "linux/arm64"},
			},
			Hardening: HardeningConfig{
				Mode:                        ModeEnforce,
				DropAllCapabilities:         true,
				ReadOnlyRootFilesystem:      true,
				DisallowPrivilegeEscalation: true,
				SeccompRuntimeDefault:       true,
				TmpEmptyDir:                 false,
			},
		},
		Exemptions: ExemptionConfig{
			MaxWindow:           metav1.Duration{Duration: 90 * 24 * time.Hour},
			ExpiringWindow:      metav1.Duration{Duration: 7 * 24 * time.Hour},
			WorkloadControllers: slices.Clone(DefaultWorkloadControllers),
		},
		Registry: RegistryConfig{
			Allow:          []string{},
			AllowAddresses: []string{},
			Insecure:       []string{},
			Mirrors:        map[string]string{},
			Timeout:        metav1.Duration{Duration: DefaultRegistryTimeout},
		},
	}
}

// Parse reads a policy file over the defaults and validates it. Unknown fields are
// errors, so a typo never silently falls back to a default. The error names the field.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, fmt.Errorf("policy is %d bytes, more than the limit of %d", len(data), MaxPolicyBytes)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	p := Defaults()
	// Case-sensitive and strict: a misspelt field is an error, never a silent default.
	strict, err := kjson.UnmarshalStrict(js, &p, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("parse policy: %w", errors.Join(strict...))
	}
	if errs := p.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid policy: %w", errs.ToAggregate())
	}
	return &p, nil
}

// Validate checks p and returns every problem with the path of its field.
func (p *Policy) Validate() field.ErrorList {
	var errs field.ErrorList
	if p.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), p.APIVersion, []string{APIVersion}))
	}
	if p.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), p.Kind, []string{Kind}))
	}
	checks := field.NewPath("checks")
	errs = append(errs, validateMode(checks.Child("digest", "mode"), p.Checks.Digest.Mode)...)
	errs = append(errs, validateMode(checks.Child("hardening", "mode"), p.Checks.Hardening.Mode)...)
	if pin := p.Checks.Digest.Pinning; pin != PinningRequire && pin != PinningResolve {
		errs = append(errs, field.NotSupported(checks.Child("digest", "pinning"), pin, []Pinning{PinningRequire, PinningResolve}))
	}
	errs = append(errs, p.Checks.Signature.validate(checks.Child("signature"))...)
	errs = append(errs, p.Checks.BaseImage.validate(checks.Child("baseImage"))...)
	errs = append(errs, p.Checks.Vulnerabilities.validate(checks.Child("vulnerabilities"))...)
	errs = append(errs, p.Registry.validate(field.NewPath("registry"))...)
	ex := field.NewPath("exemptions")
	if d := p.Exemptions.MaxWindow.Duration; d <= 0 || d > maxExemptionWindow {
		errs = append(errs, field.Invalid(ex.Child("maxWindow"), d.String(), "must be positive and at most 366 days (8784h)"))
	}
	if d := p.Exemptions.ExpiringWindow.Duration; d < 0 {
		errs = append(errs, field.Invalid(ex.Child("expiringWindow"), d.String(), "must not be negative"))
	}
	for i, u := range p.Exemptions.WorkloadControllers {
		if strings.TrimSpace(u) == "" {
			errs = append(errs, field.Required(ex.Child("workloadControllers").Index(i), "a user name"))
		}
	}
	return errs
}

func validateMode(path *field.Path, m Mode) field.ErrorList {
	if slices.Contains(Modes, m) {
		return nil
	}
	return field.ErrorList{field.NotSupported(path, m, Modes)}
}

// ModeOf returns the mode of check c.
func (p *Policy) ModeOf(c CheckID) Mode {
	switch c {
	case CheckDigest:
		return p.Checks.Digest.Mode
	case CheckHardening:
		return p.Checks.Hardening.Mode
	case CheckSignature:
		return p.Checks.Signature.Mode
	case CheckBaseImage:
		return p.Checks.BaseImage.Mode
	case CheckVulnerabilities:
		return p.Checks.Vulnerabilities.Mode
	}
	// Fail closed: a check without configuration is enforced.
	return ModeEnforce
}
