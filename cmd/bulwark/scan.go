package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/wire"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
)

type scanOptions struct {
	db, policyFile, output, caFile, namespace, now string
	platforms, allow                               []string
}

func newScan(stdout io.Writer) *cobra.Command {
	var o scanOptions
	cmd := &cobra.Command{
		Use:   "scan IMAGE@DIGEST --db DIR [--policy FILE]",
		Short: "scan one image with the scanner the cluster uses and judge it by the policy",
		Long: `scan pulls the image by digest (registry credentials from the Docker config), scans
it with the same scanner code the cluster's scanner runs (syft and grype, on the grype v6
database in --db), and judges the findings with the policy's vulnerabilities check:
threshold (per namespace), onlyFixed and ignore rules with their expiry.

Registries: the policy's registry.allow, plus the image's own registry (add token or blob
hosts with --allow-registry).

Exit codes: 0 admitted, 1 denied, 2 usage, input or scan error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScan(cmd.Context(), args[0], o, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "", "directory holding the grype v6 database (vulnerability.db, import.json); required")
	f.StringVar(&o.policyFile, "policy", "", "policy file; default: the built-in defaults")
	f.StringVarP(&o.output, "output", "o", "table", "table, json or sarif")
	f.StringVar(&o.caFile, "registry-ca-file", "", "CA bundle (PEM) trusted for registries, besides the system roots")
	f.StringVarP(&o.namespace, "namespace", "n", "default", "namespace the image would run in (thresholds and ignore rules per namespace)")
	f.StringVar(&o.now, "now", "", "judge ignore-rule expiry and database age at this RFC 3339 time instead of now")
	f.StringSliceVar(&o.platforms, "platform", nil, "platforms of a multi-platform image to scan (os/arch[/variant]); default: the policy's")
	f.StringArrayVar(&o.allow, "allow-registry", nil, "also allow this registry host[:port] (e.g. a token realm); repeatable")
	_ = cmd.MarkFlagRequired("db")
	return cmd
}

func runScan(ctx context.Context, image string, o scanOptions, stdout io.Writer) error {
	inputErr := func(err error) error { return &exitError{code: exitInput, err: err} }
	switch o.output {
	case "table", "json", "sarif":
	default:
		return inputErr(fmt.Errorf("--output %q: want table, json or sarif", o.output))
	}
	d, err := name.NewDigest(image)
	if err != nil || !policy.Pinned(image) {
		return inputErr(fmt.Errorf("%q: scan takes an image pinned by sha256 digest (repo@sha256:…)", image))
	}
	p, err := loadPolicy(o.policyFile)
	if err != nil {
		return inputErr(err)
	}
	now := time.Now()
	if o.now != "" {
		if now, err = time.Parse(time.RFC3339, o.now); err != nil {
			return inputErr(fmt.Errorf("--now: %w", err))
		}
	}
	roots, err := wire.RegistryRoots(o.caFile)
	if err != nil {
		return inputErr(fmt.Errorf("--registry-ca-file: %w", err))
	}
	ro := wire.RegistryOptions(p, roots, nil)
	ro.Allow = append(append(append([]string(nil), ro.Allow...), d.RegistryStr()), o.allow...)
	rc, err := registry.New(ro)
	if err != nil {
		return inputErr(err)
	}
	db, err := grype.OpenDB(o.db, grype.DBOptions{})
	if err != nil {
		return inputErr(fmt.Errorf("--db: %w", err))
	}
	defer db.Close()
	sc, err := grype.New(grype.Options{DB: db})
	if err != nil {
		return inputErr(err)
	}
	names := o.platforms
	if len(names) == 0 {
		names = p.Checks.Vulnerabilities.Platforms
	}
	var platforms []v1.Platform
	for _, s := range names {
		pl, err := v1.ParsePlatform(s)
		if err != nil {
			return inputErr(fmt.Errorf("--platform %q: %w", s, err))
		}
		platforms = append(platforms, *pl)
	}
	report, err := sc.Scan(ctx, scan.Request{Image: d, Platforms: platforms, Remote: rc.RemoteOptionsFor(ctx, d, authn.DefaultKeychain)})
	if err != nil {
		return inputErr(fmt.Errorf("scan %s: %w", d, err))
	}
	verdicts := policy.JudgeScan(p, d.String(), o.namespace, now, report)
	switch o.output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(struct {
			Report   *scan.Report     `json:"report"`
			Verdicts []policy.Verdict `json:"verdicts"`
		}{report, verdicts})
	case "sarif":
		err = writeScanSARIF(stdout, d.String(), verdicts)
	default:
		err = writeScanTable(stdout, report, verdicts)
	}
	if err != nil {
		return err
	}
	for _, v := range verdicts {
		if v.Action == policy.ActionDeny {
			return &exitError{code: exitDenied}
		}
	}
	return nil
}

func writeScanTable(w io.Writer, r *scan.Report, verdicts []policy.Verdict) error {
	decided := map[string]policy.Action{}
	for _, v := range verdicts {
		decided[v.Finding] = v.Action
	}
	fmt.Fprintf(w, "%s (%s, database built %s, %s)\n", r.Image, r.Scanner, r.DBBuilt.UTC().Format(time.RFC3339), strings.Join(r.Platforms, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tCVSS\tPACKAGE\tINSTALLED\tFIXED-IN\tPLATFORM\tDECISION")
	for _, f := range r.Findings {
		decision := "below threshold"
		if a, ok := decided[f.ID]; ok {
			decision = string(a)
		}
		cvss := ""
		if f.CVSS > 0 {
			cvss = fmt.Sprintf("%.1f", f.CVSS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Severity, cvss, f.Package, f.Installed, f.FixedIn, f.Platform, decision)
	}
	return tw.Flush()
}

// writeScanSARIF writes one SARIF result per judged finding, located at the image.
func writeScanSARIF(w io.Writer, image string, verdicts []policy.Verdict) error {
	run := sarif.NewRunWithInformationURI("bulwark", "https://github.com/bulwark-dev/bulwark")
	rules := map[string]bool{}
	for _, v := range verdicts {
		id := string(v.Check) + "/" + string(v.Reason)
		if !rules[id] {
			rules[id] = true
			run.AddRule(id).WithShortDescription(sarif.NewMultiformatMessageString().WithText(string(v.Check) + ": " + string(v.Reason)))
		}
		res := run.CreateResultForRule(id).WithLevel(level(string(v.Action))).WithMessage(sarif.NewTextMessage(v.Detail)).
			AddLocation(sarif.NewLocation().AddLogicalLocation(sarif.NewLogicalLocation().WithName(image).WithFullyQualifiedName(image).WithKind("resource")))
		if v.Exemption != nil {
			res.AddSuppression(sarif.NewSuppression().WithKind("external").WithStatus("accepted").WithJustification(v.Exemption.Reason))
		}
	}
	report := sarif.NewReport()
	report.AddRun(run)
	return report.PrettyWrite(w)
}
