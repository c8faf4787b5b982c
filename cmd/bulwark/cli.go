package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-dev/bulwark/internal/wire"
	"github.com/bulwark-dev/bulwark/pkg/check"
	"github.com/bulwark-dev/bulwark/pkg/policy"
)

// Exit codes.
const (
	exitAdmitted = 0
	exitDenied   = 1
	exitInput    = 2
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// run executes the CLI and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitAdmitted
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.code != exitDenied {
			fmt.Fprintln(stderr, "bulwark:", ee.err)
		}
		return ee.code
	}
	// Flag and argument errors.
	fmt.Fprintln(stderr, "bulwark:", err)
	return exitInput
}

func newRoot(stdin io.Reader, stdout io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "bulwark",
		Short:         "bulwark's admission decisions, offline",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newCheck(stdin, stdout), newScan(stdout), newPolicy(stdout))
	return root
}

type checkOptions struct {
	files       []string
	policyFile  string
	output      string
	strict      bool
	user        string
	exemptRight bool
	now         string
	namespace   string
	online      onlineOptions
}

func newCheck(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check -f FILE|DIR|- [-f …] [--policy FILE]",
		Short: "judge manifests as the webhook would on CREATE",
		Long: `check reads multi-document YAML or JSON (plain manifests, helm template or
kustomize build output, Lists) and judges every Pod and workload with the webhook's own
handlers: the mutating pass (hardening), then the validating pass. Kinds bulwark does not
gate are skipped; unknown kinds are input errors.

Exit codes: 0 admitted (warnings too, unless --strict), 1 denied, 2 usage or input error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.Context(), o, stdin, stdout, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "file, directory (recursive: .yaml, .yml, .json) or - for stdin; repeatable")
	f.StringVar(&o.policyFile, "policy", "", "policy file; default: the built-in defaults")
	f.StringVarP(&o.output, "output", "o", "table", "table, json or sarif")
	f.BoolVar(&o.strict, "strict", false, "exit 1 on warnings too")
	f.StringVar(&o.user, "as", "ci", "user the manifests are judged as applied by")
	f.BoolVar(&o.exemptRight, "exempt-right", false, "assume that user may grant the exemptions the manifests carry (an operator applying them)")
	f.StringVarP(&o.namespace, "namespace", "n", "default", "namespace of objects that name none")
	f.StringVar(&o.now, "now", "", "judge exemption expiry at this RFC 3339 time instead of now")
	f.BoolVar(&o.online.registry, "registry", false, "contact registries (the policy's registry.allow; credentials from the Docker config) for the signature and base-image checks and tag resolution; without it they are skipped")
	f.StringVar(&o.online.db, "db", "", "scan images with the grype v6 database in this directory for the vulnerabilities check; without it the check is skipped")
	f.StringVar(&o.online.caFile, "registry-ca-file", "", "CA bundle (PEM) trusted for registries, besides the system roots")
	return cmd
}

func runCheck(ctx context.Context, o checkOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	inputErr := func(err error) error { return &exitError{code: exitInput, err: err} }
	switch o.output {
	case "table", "json", "sarif":
	default:
		return inputErr(fmt.Errorf("--output %q: want table, json or sarif", o.output))
	}
	p, err := loadPolicy(o.policyFile)
	if err != nil {
		return inputErr(err)
	}
	now := time.Now
	if o.now != "" {
		t, err := time.Parse(time.RFC3339, o.now)
		if err != nil {
			return inputErr(fmt.Errorf("--now: %w", err))
		}
		now = func() time.Time { return t }
	}
	docs, err := check.Load(o.files, stdin)
	if err != nil {
		return inputErr(err)
	}
	p, co, closeOnline, err := online(p, o.online, stderr)
	if err != nil {
		return inputErr(err)
	}
	defer closeOnline()
	co.User, co.ExemptRight, co.Now, co.Namespace = o.user, o.exemptRight, now, o.namespace
	c, err := check.NewChecker(p, co)
	if err != nil {
		return inputErr(err)
	}
	results := make([]*check.Result, 0, len(docs))
	for i := range docs {
		r, err := c.Check(ctx, &docs[i])
		if err != nil {
			return inputErr(err)
		}
		results = append(results, r)
	}
	switch o.output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(results)
	case "sarif":
		err = writeSARIF(stdout, results)
	default:
		err = writeTable(stdout, results)
	}
	if err != nil {
		return inputErr(err)
	}
	code := exitAdmitted
	for _, r := range results {
		if r.Outcome == check.Denied || (o.strict && r.Outcome == check.Warned) {
			code = exitDenied
		}
	}
	if code != exitAdmitted {
		return &exitError{code: code}
	}
	return nil
}

func loadPolicy(file string) (*policy.Policy, error) {
	if file == "" {
		p := policy.Defaults()
		return &p, nil
	}
	p, err := wire.LoadPolicy(file)
	if err != nil {
		return nil, fmt.Errorf("--policy %s: %w", file, err)
	}
	return p, nil
}

func writeTable(w io.Writer, results []*check.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCATION\tOBJECT\tOUTCOME\tFINDING")
	for _, r := range results {
		obj := r.Kind + "/" + r.Name
		if len(r.Findings) == 0 {
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\t\n", r.File, r.Line, obj, r.Outcome)
			continue
		}
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%s %s\n", r.File, f.Line, obj, r.Outcome, f.Action, f.Message)
		}
	}
	return tw.Flush()
}

func newPolicy(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "validate a policy file or print the defaults"}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "validate a policy file; the error names the field",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if _, err := loadPolicy(args[0]); err != nil {
				return &exitError{code: exitInput, err: err}
			}
			fmt.Fprintf(stdout, "%s: valid\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use:   "defaults",
		Short: "print the documented default policy",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			out, err := yaml.Marshal(policy.Defaults())
			if err != nil {
				return err
			}
			_, err = stdout.Write(out)
			return err
		},
	})
	return cmd
}
