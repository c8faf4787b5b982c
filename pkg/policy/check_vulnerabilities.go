package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/bulwark-dev/bulwark/pkg/scan"
)

// VulnerabilityTargets lists, once each, the pinned images whose scan the
// vulnerabilities check judges; the admission layer puts their scan state in
// in.Scans.
func VulnerabilityTargets(p *Policy, in *Input) []name.Digest {
	if !p.Checks.Vulnerabilities.Enabled || !NeedsJudgement(in) {
		return nil
	}
	var out []name.Digest
	for _, d := range pinnedImages(in) {
		if matchesAny(p.Checks.Vulnerabilities.Images, d.String()) {
			out = append(out, d)
		}
	}
	return out
}

// ScanThreshold is the lowest severity any namespace's threshold names: the
// scanner records the findings at or above it.
func (c *VulnerabilitiesConfig) ScanThreshold() scan.Severity {
	low := c.Threshold
	for _, n := range c.Namespaces {
		if severityRank(n.Threshold) < severityRank(low) {
			low = n.Threshold
		}
	}
	return scan.Severity(low)
}

// checkVulnerabilities: no image may have a known vulnerability at or above the
// threshold (of the namespace, else the policy's), unless OnlyFixed and it has
// no fix, or an ignore rule that has not expired accepts it. A scan still
// running, failed, or made with a database older than MaxDBAge is decided by
// the configured outcome.
//
// Inspects: every image field (as EachImage) and in.Scans. Validate stage only.
func checkVulnerabilities(p *Policy, in *Input) []Verdict {
	cfg := &p.Checks.Vulnerabilities
	if !cfg.Enabled {
		return nil
	}
	act := actionFor(cfg.Mode)
	threshold := severityRank(cfg.Threshold)
	for _, n := range cfg.Namespaces {
		if n.Namespace == in.Namespace {
			threshold = severityRank(n.Threshold)
		}
	}
	var out []Verdict
	eachPinnedImage(in, func(image string, path *field.Path) {
		if !matchesAny(cfg.Images, image) {
			return // out of scope: not scanned
		}
		add := func(r Reason, a Action, finding, detail string, e *Exemption) {
			if a != "" {
				out = append(out, Verdict{Check: CheckVulnerabilities, Reason: r, Action: a, Path: path.String(), Finding: finding, Detail: detail, Exemption: e})
			}
		}
		st, ok := in.Scans[image]
		if !ok {
			st = scan.State{Phase: scan.PhaseMissing}
		}
		switch {
		case st.Phase == scan.PhaseFailed:
			// Fail closed: an image that cannot be scanned is not known to be safe.
			add(ReasonScanFailed, act, "", fmt.Sprintf("%q: %s (%s)", image, strings.TrimSpace(st.Message), st.Reason), nil)
			return
		case st.Phase != scan.PhaseComplete || st.Report == nil,
			st.Outdated > cfg.StaleScanWindow.Duration:
			retry := max(st.RetryAfter.Round(time.Second), time.Second)
			detail := fmt.Sprintf("%q: scan in progress, retry in about %d s", image, int(retry.Seconds()))
			if st.Message != "" {
				detail += " (" + st.Message + ")"
			}
			add(ReasonScanPending, outcomeAction(cfg.Pending, act), "", detail, nil)
			return
		}
		if age := in.Now.Sub(st.Report.DBBuilt); age > cfg.MaxDBAge.Duration {
			add(ReasonVulnDBStale, outcomeAction(cfg.StaleDB, act), "", fmt.Sprintf("%q was scanned with a vulnerability database built %s ago, more than checks.vulnerabilities.maxDBAge %s",
				image, age.Round(time.Hour), cfg.MaxDBAge.Duration), nil)
			return
		}
		seen := map[string]bool{}
		denied := len(out)
		defer func() {
			// Fail closed: findings the scan could not list cannot be accepted
			// by an ignore rule or onlyFixed.
			if st.Report.Omitted > 0 && len(out) == denied {
				add(ReasonImageVulnerable, act, "", fmt.Sprintf("%q has %d more findings than the %d its ImageScan lists; they cannot be judged one by one",
					image, st.Report.Omitted, len(st.Report.Findings)), nil)
			}
		}()
		for _, f := range st.Report.Findings {
			key := f.ID + " " + f.Package + " " + f.Installed
			if severityRank(string(f.Severity)) < threshold || (cfg.OnlyFixed && f.FixedIn == "") || seen[key] {
				continue
			}
			seen[key] = true
			detail := fmt.Sprintf("%q: %s", image, describeFinding(f))
			if rule, expired := cfg.ignoreRule(f, image, in.Namespace, in.Now); rule != nil {
				add(ReasonImageVulnerable, ActionExempt, f.ID, detail+" (accepted by checks.vulnerabilities.ignore: "+rule.Reason+")",
					&Exemption{Origin: OriginPolicy, Targets: []ExemptTarget{{Check: CheckVulnerabilities, Finding: f.ID}}, Reason: rule.Reason, Until: rule.Expires.Time, GrantedBy: "policy ignore rule"})
				continue
			} else if expired != nil {
				detail += fmt.Sprintf(" (the ignore rule for it expired %s)", expired.Expires.UTC().Format(time.RFC3339))
			}
			add(ReasonImageVulnerable, act, f.ID, detail+fmt.Sprintf("; to accept it, ask for the exemption %s: vulnerabilities:%s", AnnotationExempt, f.ID), nil)
		}
	})
	return out
}

// describeFinding: CVE-2024-1 (Critical, CVSS 9.8) in openssl 3.0.1 (apk), fixed in 3.0.2.
func describeFinding(f scan.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s", f.ID, f.Severity)
	if f.CVSS > 0 {
		fmt.Fprintf(&b, ", CVSS %.1f", f.CVSS)
	}
	fmt.Fprintf(&b, ") in %s %s", f.Package, f.Installed)
	if f.Type != "" {
		fmt.Fprintf(&b, " (%s)", f.Type)
	}
	if f.FixedIn != "" {
		fmt.Fprintf(&b, " → fixed in %s", f.FixedIn)
	} else {
		b.WriteString(", no fix yet")
	}
	if f.Platform != "" {
		fmt.Fprintf(&b, " [%s]", f.Platform)
	}
	return b.String()
}

// ignoreRule returns the rule that accepts f now, or else the most recently
// expired rule that would have.
func (c *VulnerabilitiesConfig) ignoreRule(f scan.Finding, image, namespace string, now time.Time) (active, expired *IgnoreRule) {
	for i := range c.Ignore {
		r := &c.Ignore[i]
		if !strings.EqualFold(r.ID, f.ID) || (r.Package != "" && r.Package != f.Package) ||
			(len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, namespace)) || (len(r.Images) > 0 && !matchesAny(r.Images, image)) {
			continue
		}
		if now.Before(r.Expires.Time) {
			return r, nil
		}
		if expired == nil || r.Expires.After(expired.Expires.Time) {
			expired = r
		}
	}
	return nil, expired
}

func matchesAny(patterns []string, image string) bool {
	ref, err := name.ParseReference(image)
	if err != nil {
		return false
	}
	for _, p := range patterns {
		if matchImage(p, ref.Context().Name()) {
			return true
		}
	}
	return false
}

// outcomeAction is what an outcome does, in a check whose mode gives act.
func outcomeAction(o Outcome, act Action) Action {
	switch {
	case o == OutcomeAllow:
		return ActionAudit
	case o == OutcomeWarn && act == ActionDeny:
		return ActionWarn
	default:
		return act
	}
}

// JudgeScan judges one image's scan report as the webhook's vulnerabilities
// check does for a pod in namespace whose one container runs image: the
// threshold (per namespace), onlyFixed, and the ignore rules with their expiry
// at now. It returns the vulnerabilities check's verdicts only; the other checks
// need a cluster or a manifest. `bulwark scan` and the dogfood test decide with it.
func JudgeScan(p *Policy, image, namespace string, now time.Time, report *scan.Report) []Verdict {
	q := *p
	q.Checks.Vulnerabilities.Enabled = true
	q.Checks.Signature.Enabled, q.Checks.BaseImage.Enabled = false, false
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "image", Image: image, SecurityContext: q.Checks.Hardening.SecurityContext()}}}
	in := &Input{Stage: StageValidate, Operation: OperationCreate, Pod: true, Spec: spec, SpecPath: field.NewPath("spec"),
		Namespace: namespace, Now: now, Scans: map[string]scan.State{image: {Phase: scan.PhaseComplete, Report: report}}}
	var out []Verdict
	for _, v := range Evaluate(&q, in).Verdicts {
		if v.Check == CheckVulnerabilities {
			out = append(out, v)
		}
	}
	return out
}
