package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-dev/bulwark/pkg/scan"
)

func TestCheckVulnerabilitiesMessages(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	critical := scan.Finding{ID: "CVE-2026-1", Severity: scan.SeverityCritical, CVSS: 9.8, Package: "openssl", Type: "apk", Installed: "3.3.1-r0", FixedIn: "3.3.2-r0"}
	unfixed := scan.Finding{ID: "CVE-2026-2", Severity: scan.SeverityCritical, Package: "zlib", Type: "apk", Installed: "1.3", Platform: "linux/arm64"}
	high := scan.Finding{ID: "CVE-2026-3", Severity: scan.SeverityHigh, CVSS: 7.5, Package: "busybox", Type: "apk", Installed: "1.36", FixedIn: "1.37"}
	complete := func(fs ...scan.Finding) scan.State {
		return scan.State{Phase: scan.PhaseComplete, Report: &scan.Report{DBBuilt: now.Add(-time.Hour), Findings: fs}}
	}
	const hint = "; to accept it, ask for the exemption bulwark.dev/exempt: vulnerabilities:"
	img := `spec.containers[0].image: `
	tests := map[string]struct {
		edit    func(c *VulnerabilitiesConfig)
		ns      string
		state   *scan.State
		want    []string
		actions []Action
	}{
		"critical with a fix": {
			state:   ptrTo(complete(critical, high)),
			want:    []string{img + `image has a known vulnerability (check vulnerabilities): "` + pinned + `": CVE-2026-1 (Critical, CVSS 9.8) in openssl 3.3.1-r0 (apk) → fixed in 3.3.2-r0` + hint + "CVE-2026-1"},
			actions: []Action{ActionDeny},
		},
		"unfixed, and onlyFixed": {
			edit:  func(c *VulnerabilitiesConfig) { c.OnlyFixed = true },
			state: ptrTo(complete(unfixed)),
		},
		"unfixed": {
			state:   ptrTo(complete(unfixed)),
			want:    []string{img + `image has a known vulnerability (check vulnerabilities): "` + pinned + `": CVE-2026-2 (Critical) in zlib 1.3 (apk), no fix yet [linux/arm64]` + hint + "CVE-2026-2"},
			actions: []Action{ActionDeny},
		},
		"namespace threshold High": {
			edit: func(c *VulnerabilitiesConfig) {
				c.Namespaces = []NamespaceThreshold{{Namespace: "strict", Threshold: "High"}}
			},
			ns:      "strict",
			state:   ptrTo(complete(high)),
			want:    []string{img + `image has a known vulnerability (check vulnerabilities): "` + pinned + `": CVE-2026-3 (High, CVSS 7.5) in busybox 1.36 (apk) → fixed in 1.37` + hint + "CVE-2026-3"},
			actions: []Action{ActionDeny},
		},
		"ignore rule in force": {
			edit: func(c *VulnerabilitiesConfig) {
				c.Ignore = []IgnoreRule{{ID: "CVE-2026-1", Package: "openssl", Reason: "TICKET-1", Expires: metav1.NewTime(now.Add(time.Hour))}}
			},
			state:   ptrTo(complete(critical)),
			want:    []string{img + `image has a known vulnerability (check vulnerabilities): "` + pinned + `": CVE-2026-1 (Critical, CVSS 9.8) in openssl 3.3.1-r0 (apk) → fixed in 3.3.2-r0 (accepted by checks.vulnerabilities.ignore: TICKET-1)`},
			actions: []Action{ActionExempt},
		},
		"ignore rule for another namespace": {
			edit: func(c *VulnerabilitiesConfig) {
				c.Ignore = []IgnoreRule{{ID: "CVE-2026-1", Namespaces: []string{"other"}, Reason: "TICKET-1", Expires: metav1.NewTime(now.Add(time.Hour))}}
			},
			ns:      "team-a",
			state:   ptrTo(complete(critical)),
			actions: []Action{ActionDeny},
		},
		"ignore rule expired": {
			edit: func(c *VulnerabilitiesConfig) {
				c.Ignore = []IgnoreRule{{ID: "CVE-2026-1", Reason: "TICKET-1", Expires: metav1.NewTime(now.Add(-time.Hour))}}
			},
			state:   ptrTo(complete(critical)),
			want:    []string{img + `image has a known vulnerability (check vulnerabilities): "` + pinned + `": CVE-2026-1 (Critical, CVSS 9.8) in openssl 3.3.1-r0 (apk) → fixed in 3.3.2-r0 (the ignore rule for it expired 2026-11-26T11:00:00Z)` + hint + "CVE-2026-1"},
			actions: []Action{ActionDeny},
		},
		"pending, deny": {
			state:   &scan.State{Phase: scan.PhasePending, RetryAfter: 12 * time.Second},
			want:    []string{img + `scan in progress (check vulnerabilities): "` + pinned + `": scan in progress, retry in about 12 s`},
			actions: []Action{ActionDeny},
		},
		"not scanned yet, warn": {
			edit:    func(c *VulnerabilitiesConfig) { c.Pending = OutcomeWarn },
			actions: []Action{ActionWarn},
		},
		"pending, allow is audited": {
			edit:    func(c *VulnerabilitiesConfig) { c.Pending = OutcomeAllow },
			state:   &scan.State{Phase: scan.PhasePending},
			actions: []Action{ActionAudit},
		},
		"outdated beyond the window is pending": {
			state:   &scan.State{Phase: scan.PhaseComplete, Report: &scan.Report{DBBuilt: now.Add(-time.Hour)}, Outdated: 25 * time.Hour},
			actions: []Action{ActionDeny},
		},
		"outdated within the window decides": {
			state: &scan.State{Phase: scan.PhaseComplete, Report: &scan.Report{DBBuilt: now.Add(-time.Hour)}, Outdated: time.Hour},
		},
		"failed": {
			state:   &scan.State{Phase: scan.PhaseFailed, Reason: "ExceedsScanLimits", Message: "exceeds scan limits: uncompressed bytes"},
			want:    []string{img + `image could not be scanned (check vulnerabilities): "` + pinned + `": exceeds scan limits: uncompressed bytes (ExceedsScanLimits)`},
			actions: []Action{ActionDeny},
		},
		"database too old, warn": {
			edit:    func(c *VulnerabilitiesConfig) { c.StaleDB = OutcomeWarn },
			state:   &scan.State{Phase: scan.PhaseComplete, Report: &scan.Report{DBBuilt: now.Add(-200 * time.Hour), Findings: []scan.Finding{critical}}},
			want:    []string{img + `vulnerability database too old (check vulnerabilities): "` + pinned + `" was scanned with a vulnerability database built 200h0m0s ago, more than checks.vulnerabilities.maxDBAge 120h0m0s`},
			actions: []Action{ActionWarn},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := Defaults()
			p.Checks.Vulnerabilities.Enabled = true
			if tc.edit != nil {
				tc.edit(&p.Checks.Vulnerabilities)
			}
			in := podInput(StageValidate, corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: pinned, SecurityContext: hardened()}}})
			in.Namespace, in.Now = tc.ns, now
			if tc.state != nil {
				in.Scans = map[string]scan.State{pinned: *tc.state}
			}
			var got []string
			var actions []Action
			for _, v := range Evaluate(&p, in).Verdicts {
				got, actions = append(got, v.String()), append(actions, v.Action)
			}
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.actions, actions); diff != "" {
				t.Errorf("actions (-want +got):\n%s (%v)", diff, got)
			}
		})
	}
}
