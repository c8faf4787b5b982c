package main

import (
	"io"
	"path/filepath"
	"sort"

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
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, r := range results {
		uri := filepath.ToSlash(r.File)
		for _, f := range r.Findings {
			run.AddDistinctArtifact(uri)
			run.CreateResultForRule(f.Check + "/" + f.Reason).
				WithLevel(level(f.Action)).
				WithMessage(sarif.NewTextMessage(f.Message)).
				AddLocation(sarif.NewLocationWithPhysicalLocation(sarif.NewPhysicalLocation().
					WithArtifactLocation(sarif.NewSimpleArtifactLocation(uri)).
					WithRegion(sarif.NewSimpleRegion(f.Line, f.Line))))
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
	}
	return "note"
}
