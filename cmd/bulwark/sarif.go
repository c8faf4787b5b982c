package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/bulwark-dev/bulwark/pkg/check"
)

// writeSARIF writes the findings as a SARIF 2.1.0 log: one rule per check and
// reason, one result per finding, located at the line of the offending field.
func writeSARIF(w io.Writer, results []*check.Result) error {
	run := sarif.NewRunWithInformationURI("bulwark", "https://github.com/bulwark-dev/bulwark")
	rules := map[string]bool{}
	for _, r := range results {
		for _, f := range r.Findings {
			id := f.Check + "/" + f.Reason
			if !rules[id] {
				rules[id] = true
				run.AddRule(id).WithShortDescription(sarif.NewMultiformatMessageString().WithText(f.Check + ": " + f.Reason))
			}
		}
	}
	for _, r := range results {
		uri := filepath.ToSlash(r.File)
		// The object and the field, for dashboards that show logical locations.
		object := fmt.Sprintf("document %d", r.Document)
		if r.Item > 0 {
			object += fmt.Sprintf(" item %d", r.Item)
		}
		object += fmt.Sprintf(": %s %s", r.Kind, r.Name)
		for _, f := range r.Findings {
			run.AddDistinctArtifact(uri)
			loc := sarif.NewLocationWithPhysicalLocation(sarif.NewPhysicalLocation().
				WithArtifactLocation(sarif.NewSimpleArtifactLocation(uri)).
				WithRegion(sarif.NewSimpleRegion(f.Line, f.Line))).
				AddLogicalLocation(sarif.NewLogicalLocation().WithName(f.Path).WithFullyQualifiedName(object + " " + f.Path).WithKind("member"))
			res := run.CreateResultForRule(f.Check + "/" + f.Reason).
				WithLevel(level(f.Action)).
				WithMessage(sarif.NewTextMessage(f.Message)).
				AddLocation(loc)
			if f.Exemption != "" {
				// An exempted finding is a suppressed result, with the exemption as
				// its justification.
				res.AddSuppression(sarif.NewSuppression().WithKind("external").WithStatus("accepted").WithJustification(f.Exemption))
			}
		}
	}
	report := sarif.NewReport()
	report.AddRun(run)
	return report.PrettyWrite(w)
}

func level(action string) string {
	switch action {
	case "deny":
		return "error"
	case "warn":
		return "warning"
	case "exempt":
		return "error" // what it would be; the suppression says why it is not
	}
	return "note"
}
