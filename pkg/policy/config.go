package policy

import (
	"errors"
	"fmt"
	"slices"

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
)

// Policy is the operator's configuration of every check. Defaults returns the
// documented defaults; a policy file only needs the fields it changes.
type Policy struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Checks     Checks `json:"checks"`
}

// Checks holds the configuration of each check.
type Checks struct {
	Digest    DigestConfig    `json:"digest"`
	Hardening HardeningConfig `json:"hardening"`
}

// DigestConfig configures the digest check.
type DigestConfig struct {
	// Mode defaults to enforce.
	Mode Mode `json:"mode"`
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
			Digest: DigestConfig{Mode: ModeEnforce},
			Hardening: HardeningConfig{
				Mode:                        ModeEnforce,
				DropAllCapabilities:         true,
				ReadOnlyRootFilesystem:      true,
				DisallowPrivilegeEscalation: true,
				SeccompRuntimeDefault:       true,
				TmpEmptyDir:                 false,
			},
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
	}
	// Fail closed: a check without configuration is enforced.
	return ModeEnforce
}
