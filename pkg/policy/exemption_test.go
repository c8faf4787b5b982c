package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func exemptAnn(targets, reason, until string) map[string]string {
	return map[string]string{AnnotationExempt: targets, AnnotationExemptReason: reason, AnnotationExemptUntil: until}
}

func TestParseExemption(t *testing.T) {
	cfg := Defaults().Exemptions
	tests := map[string]struct {
		ann         map[string]string
		wantTargets []ExemptTarget
		wantUntil   time.Time
		wantCause   RejectCause
		wantMsg     string
	}{
		"none": {ann: map[string]string{"other": "x"}},
		"checks and a finding, date until": {
			ann:         exemptAnn(" hardening, vulnerabilities:CVE-2024-3094", "OPS-123", "2026-12-31"),
			wantTargets: []ExemptTarget{{Check: CheckHardening}, {Check: "vulnerabilities", Finding: "CVE-2024-3094"}},
			wantUntil:   time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		"RFC 3339 until": {
			ann:         exemptAnn("digest", "vendor image, see OPS-9", "2026-11-27T08:00:00+01:00"),
			wantTargets: []ExemptTarget{{Check: CheckDigest}},
			wantUntil:   time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC),
		},
		"unknown check": {
			ann:       exemptAnn("digests", "x", "2026-12-01"),
			wantCause: RejectMalformed,
			wantMsg:   `exemption on the object not honoured: bulwark.dev/exempt: unknown check "digests" (known: digest, signature, vulnerabilities, hardening, base-image)`,
		},
		"bad finding": {
			ann:       exemptAnn("vulnerabilities:CVE 1", "x", "2026-12-01"),
			wantCause: RejectMalformed,
			wantMsg:   `exemption on the object not honoured: bulwark.dev/exempt: finding "CVE 1" of check vulnerabilities is not a valid id`,
		},
		"no reason": {
			ann:       exemptAnn("hardening", " ", "2026-12-01"),
			wantCause: RejectIncomplete,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt-reason is required: say why, e.g. a ticket",
		},
		"reason too long": {
			ann:       exemptAnn("hardening", strings.Repeat("x", MaxExemptReason+1), "2026-12-01"),
			wantCause: RejectMalformed,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt-reason is 257 bytes, more than 256",
		},
		"no until": {
			ann:       map[string]string{AnnotationExempt: "hardening", AnnotationExemptReason: "x"},
			wantCause: RejectIncomplete,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt-until is required: a date (2026-12-31) or an RFC 3339 time",
		},
		"only a reason": {
			ann:       map[string]string{AnnotationExemptReason: "x"},
			wantCause: RejectIncomplete,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt is missing or empty",
		},
		"until not a time": {
			ann:       exemptAnn("hardening", "x", "next week"),
			wantCause: RejectMalformed,
			wantMsg:   `exemption on the object not honoured: bulwark.dev/exempt-until "next week" is neither a date (2026-12-31) nor an RFC 3339 time`,
		},
		"expired": {
			ann:       exemptAnn("hardening", "x", "2026-11-25"),
			wantCause: RejectExpired,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt-until 2026-11-26T00:00:00Z has passed",
		},
		"beyond the maximum window": {
			ann:       exemptAnn("hardening", "x", "2027-06-01"),
			wantCause: RejectBeyondWindow,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt-until 2027-06-02T00:00:00Z is more than the maximum window of 90 days ahead (latest allowed: 2027-02-25T00:00:00Z)",
		},
		"a date on the last day of the window": {
			ann:         exemptAnn("hardening", "x", "2027-02-24"),
			wantTargets: []ExemptTarget{{Check: CheckHardening}},
			wantUntil:   time.Date(2027, 2, 25, 0, 0, 0, 0, time.UTC),
		},
		"a time just past the window": {
			ann:       exemptAnn("hardening", "x", "2027-02-24T12:00:01Z"),
			wantCause: RejectBeyondWindow,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt-until 2027-02-24T12:00:01Z is more than the maximum window of 90 days ahead (latest allowed: 2027-02-24T12:00:00Z)",
		},
		"reason of control characters only": {
			ann:       exemptAnn("hardening", "\x00\x7f\n", "2026-12-01"),
			wantCause: RejectIncomplete,
			wantMsg:   "exemption on the object not honoured: bulwark.dev/exempt-reason is required: say why, e.g. a ticket",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, rej := ParseExemption(tc.ann, OriginObject, now, &cfg)
			switch {
			case tc.wantCause != "":
				if rej == nil {
					t.Fatalf("honoured %+v, want rejection %s", e, tc.wantCause)
				}
				if rej.Cause != tc.wantCause || rej.String() != tc.wantMsg {
					t.Errorf("rejection = %s %q\nwant       %s %q", rej.Cause, rej, tc.wantCause, tc.wantMsg)
				}
			case tc.wantTargets == nil:
				if e != nil || rej != nil {
					t.Errorf("got %+v %+v, want nothing", e, rej)
				}
			default:
				if rej != nil {
					t.Fatalf("rejected: %s", rej)
				}
				if diff := cmp.Diff(tc.wantTargets, e.Targets); diff != "" {
					t.Errorf("targets (-want +got):\n%s", diff)
				}
				if !e.Until.Equal(tc.wantUntil) {
					t.Errorf("until = %s, want %s", e.Until, tc.wantUntil)
				}
			}
		})
	}
}

func TestReasonIsStrippedOfControlCharacters(t *testing.T) {
	cfg := Defaults().Exemptions
	e, rej := ParseExemption(exemptAnn("hardening", "OPS-1\n- spec.containers[0]: forged\x1b[31m", "2026-12-01"), OriginObject, now, &cfg)
	if rej != nil {
		t.Fatal(rej)
	}
	if e.Reason != "OPS-1- spec.containers[0]: forged[31m" {
		t.Errorf("reason = %q", e.Reason)
	}
}

func TestGrantBindsNamespaceWorkloadAndContent(t *testing.T) {
	cfg := Defaults().Exemptions
	key := []byte("0123456789abcdef0123456789abcdef")
	parse := func(ann map[string]string) *Exemption {
		e, rej := ParseExemption(ann, OriginTemplate, now, &cfg)
		if rej != nil {
			t.Fatal(rej)
		}
		return e
	}
	ann := exemptAnn("hardening", "OPS-7", "2026-12-20")
	subject := GrantSubject{Namespace: "team-a", Kind: "Deployment", Name: "web"}
	grant := SignGrant(key, subject, parse(ann), "ops")

	if by, err := VerifyGrant(key, subject, parse(ann), grant); err != nil || by != "ops" {
		t.Fatalf("VerifyGrant = %q, %v; want ops", by, err)
	}
	tests := map[string]struct {
		subject GrantSubject
		ann     map[string]string
		grant   string
		key     []byte
	}{
		"copied to another workload":  {subject: GrantSubject{"team-a", "Deployment", "evil"}},
		"copied to another kind":      {subject: GrantSubject{"team-a", "StatefulSet", "web"}},
		"copied to another namespace": {subject: GrantSubject{"team-b", "Deployment", "web"}},
		"checks edited after grant":   {ann: exemptAnn("hardening,digest", "OPS-7", "2026-12-20")},
		"until extended after grant":  {ann: exemptAnn("hardening", "OPS-7", "2027-01-20")},
		"reason edited after grant":   {ann: exemptAnn("hardening", "OPS-8", "2026-12-20")},
		"signer renamed": {grant: func() string {
			parts := strings.Split(grant, ".")
			return parts[0] + ".YWRtaW4." + parts[2] // "admin"
		}()},
		"another key":  {key: []byte("another key of 32 bytes, at leas")},
		"not a grant":  {grant: "ops"},
		"garbage mac":  {grant: "v1.b3Bz.!!!"},
		"empty string": {grant: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, a, g, k := subject, ann, grant, key
			if tc.subject != (GrantSubject{}) {
				s = tc.subject
			}
			if tc.ann != nil {
				a = tc.ann
			}
			if tc.grant != "" || name == "empty string" {
				g = tc.grant
			}
			if tc.key != nil {
				k = tc.key
			}
			if by, err := VerifyGrant(k, s, parse(a), g); err == nil {
				t.Errorf("grant verified (by %q); want it refused", by)
			}
		})
	}
}

func TestHonour(t *testing.T) {
	cfg := Defaults().Exemptions
	rsController := "system:serviceaccount:kube-system:replicaset-controller"
	tests := map[string]struct {
		origin  Origin
		facts   ExemptionFacts
		wantBy  string
		wantMsg string
	}{
		"namespace exemption with its grant": {origin: OriginNamespace, facts: ExemptionFacts{Namespace: "team-a", Requester: "dev", GrantedBy: "ops"}, wantBy: "ops"},
		"namespace exemption without a grant": {
			origin:  OriginNamespace,
			facts:   ExemptionFacts{Namespace: "team-a", Requester: "ops", Authorized: true, GrantErr: errors.New("no bulwark.dev/exempt-grant")},
			wantMsg: "exemption on the namespace not honoured: no bulwark.dev/exempt-grant",
		},
		"authorised requester": {origin: OriginObject, facts: ExemptionFacts{Namespace: "team-a", Requester: "ops", Authorized: true}, wantBy: "ops"},
		"authorised requester, template with its grant": {
			origin: OriginTemplate, facts: ExemptionFacts{Namespace: "team-a", Requester: "ops", Authorized: true, GrantRequired: true, GrantedBy: "ops"}, wantBy: "ops",
		},
		"authorised requester, template without a grant": {
			origin:  OriginTemplate,
			facts:   ExemptionFacts{Namespace: "team-a", Requester: "ops", Authorized: true, GrantRequired: true, GrantErr: errors.New("bulwark has no grant key configured")},
			wantMsg: "exemption on the template not honoured: bulwark has no grant key configured",
		},
		"missing right named": {
			origin:  OriginTemplate,
			facts:   ExemptionFacts{Namespace: "team-a", Requester: "dev", MissingRight: "digest"},
			wantMsg: `exemption on the template not honoured: user "dev" may not grant exemptions from hardening in namespace team-a (needs verb "exempt" on resource "exemptions" in API group "bulwark.dev", resourceName "digest")`,
		},
		"controller with a valid grant": {
			origin: OriginTemplate, facts: ExemptionFacts{Namespace: "team-a", Requester: rsController, GrantedBy: "ops"}, wantBy: "ops",
		},
		"controller without a grant": {
			origin:  OriginTemplate,
			facts:   ExemptionFacts{Namespace: "team-a", Requester: rsController, Authorized: true},
			wantMsg: "exemption on the template not honoured: no valid bulwark.dev/exempt-grant",
		},
		"controller with a broken grant": {
			origin:  OriginTemplate,
			facts:   ExemptionFacts{Namespace: "team-a", Requester: rsController, GrantErr: errors.New("grant does not match this exemption for Deployment team-a/web")},
			wantMsg: "exemption on the template not honoured: grant does not match this exemption for Deployment team-a/web",
		},
		"user presenting a grant": {
			origin:  OriginTemplate,
			facts:   ExemptionFacts{Namespace: "team-a", Requester: "dev", GrantedBy: "ops"},
			wantMsg: `exemption on the template not honoured: user "dev" may not grant exemptions from hardening in namespace team-a (needs verb "exempt" on resource "exemptions" in API group "bulwark.dev", resourceName "hardening")`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, rej := ParseExemption(exemptAnn("hardening", "x", "2026-12-01"), tc.origin, now, &cfg)
			if rej != nil {
				t.Fatal(rej)
			}
			got, rej := Honour(e, tc.facts, &cfg)
			if tc.wantMsg != "" {
				if rej == nil || rej.String() != tc.wantMsg {
					t.Fatalf("rejection = %v, want %q", rej, tc.wantMsg)
				}
				return
			}
			if rej != nil || got.GrantedBy != tc.wantBy {
				t.Fatalf("got %+v %v, want honoured, granted by %q", got, rej, tc.wantBy)
			}
		})
	}
}

func TestExemptionTurnsCoveredVerdictsExempt(t *testing.T) {
	p := Defaults()
	cfg := p.Exemptions
	e, rej := ParseExemption(exemptAnn("hardening", "x", "2026-12-01"), OriginObject, now, &cfg)
	if rej != nil {
		t.Fatal(rej)
	}
	sc := hardened()
	sc.ReadOnlyRootFilesystem = ptr.To(false)
	in := podInput(StageValidate, corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27", SecurityContext: sc}}})
	in.Exemptions = []*Exemption{e}
	d := Evaluate(&p, in)
	var got []string
	for _, v := range d.Verdicts {
		got = append(got, string(v.Check)+" "+string(v.Action))
	}
	if diff := cmp.Diff([]string{"digest deny", "hardening exempt"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if d.Verdicts[1].Exemption != e {
		t.Error("exempt verdict does not name its exemption")
	}
}

func FuzzParseExemption(f *testing.F) {
	f.Add("hardening,vulnerabilities:CVE-2024-3094", "OPS-1", "2026-12-31")
	f.Add("digest", "", "2026-11-27T00:00:00Z")
	f.Add(",,,", "\x00\n", "9999-99-99")
	cfg := Defaults().Exemptions
	key := []byte("k")
	f.Fuzz(func(t *testing.T, targets, reason, until string) {
		e, rej := ParseExemption(exemptAnn(targets, reason, until), OriginObject, now, &cfg)
		if (e == nil) == (rej == nil) {
			t.Fatalf("want exactly one of exemption and rejection, got %+v %+v", e, rej)
		}
		if e == nil {
			return
		}
		if !e.Until.After(now) || e.Until.After(now.Add(cfg.MaxWindow.Duration+24*time.Hour)) || len(e.Targets) == 0 || strings.TrimSpace(e.Reason) == "" {
			t.Fatalf("honoured an exemption outside the rules: %+v", e)
		}
		for _, r := range e.Reason {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in reason %q", e.Reason)
			}
		}
		s := GrantSubject{"ns", "Deployment", "web"}
		if by, err := VerifyGrant(key, s, e, SignGrant(key, s, e, "ops")); err != nil || by != "ops" {
			t.Fatalf("round trip: %q %v", by, err)
		}
	})
}
