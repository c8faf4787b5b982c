package policy

import (
	"fmt"
	"strings"
)

// Evaluate runs every check of p on in and returns the decision. It never fails:
// anything it cannot judge is a verdict.
func Evaluate(p *Policy, in *Input) Decision {
	if !NeedsJudgement(in) {
		return Decision{}
	}
	var ch *changes
	if in.Pod {
		ch = newChanges(in.OldSpec)
	}
	var d Decision
	if in.Stage == StageValidate {
		d.Verdicts = append(d.Verdicts, checkDigest(p, in, ch)...)
		d.Verdicts = append(d.Verdicts, checkSignature(p, in)...)
		d.Verdicts = append(d.Verdicts, checkBaseImage(p, in)...)
		d.Verdicts = append(d.Verdicts, checkVulnerabilities(p, in)...)
	}
	verdicts, patches := checkHardening(p, in, ch)
	d.Verdicts = append(d.Verdicts, verdicts...)
	d.Patches = append(resolvePatches(in), patches...)
	applyExemptions(d.Verdicts, in.Exemptions)
	return d
}

// applyExemptions turns each verdict an honoured exemption covers into an exempt
// one. Audit-only verdicts stay audit: an exemption never hides a record.
func applyExemptions(vs []Verdict, exemptions []*Exemption) {
	for i := range vs {
		if vs[i].Action == ActionAudit {
			continue
		}
		for _, e := range exemptions {
			if e.Covers(vs[i].Check, vs[i].Finding) {
				vs[i].Action, vs[i].Exemption = ActionExempt, e
				break
			}
		}
	}
}

// MaxMessageVerdicts bounds how many verdicts a denial message lists.
const MaxMessageVerdicts = 10

// DenialMessage renders the message a kubectl user reads when the request is denied,
// e.g. `Deployment "web" violates bulwark policy:` followed by one line per denying
// verdict. object describes the object (`Pod "web"`).
func (d *Decision) DenialMessage(object string) string {
	deny := d.ByAction(ActionDeny)
	var b strings.Builder
	fmt.Fprintf(&b, "%s violates bulwark policy:", object)
	for i, v := range deny {
		if i == MaxMessageVerdicts {
			fmt.Fprintf(&b, "\n- … and %d more", len(deny)-i)
			break
		}
		b.WriteString("\n- ")
		b.WriteString(v.String())
	}
	return b.String()
}
