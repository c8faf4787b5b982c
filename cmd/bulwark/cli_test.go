package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const pinnedPod = `apiVersion: v1
kind: Pod
metadata:
  name: ok
spec:
  containers:
    - name: web
      image: registry.example/demo/web:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`

const unpinnedDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: sidecar
          image: registry.example/demo/proxy:2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        - name: web
          image: nginx:1.27
`

func TestCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	warnPolicy := writeFile(t, dir, "warn.yaml", "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nchecks:\n  digest:\n    mode: warn\n")
	tests := map[string]struct {
		stdin    string
		args     []string
		wantCode int
		wantErr  []string // on stderr
	}{
		"admitted":                              {stdin: pinnedPod, args: []string{"check", "-f", "-"}, wantCode: 0},
		"denied":                                {stdin: unpinnedDeployment, args: []string{"check", "-f", "-"}, wantCode: 1},
		"warned":                                {stdin: unpinnedDeployment, args: []string{"check", "-f", "-", "--policy", warnPolicy}, wantCode: 0},
		"warned, strict":                        {stdin: unpinnedDeployment, args: []string{"check", "-f", "-", "--policy", warnPolicy, "--strict"}, wantCode: 1},
		"malformed YAML":                        {stdin: pinnedPod + "---\nkind: Pod\nmetadata: {name: [\n", args: []string{"check", "-f", "-"}, wantCode: 2, wantErr: []string{"-: document 2: not valid YAML or JSON"}},
		"unknown kind":                          {stdin: pinnedPod + "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", args: []string{"check", "-f", "-"}, wantCode: 2, wantErr: []string{"-: document 2: unknown kind example.com/v1 Widget"}},
		"no kind":                               {stdin: "apiVersion: v1\nmetadata: {name: x}\n", args: []string{"check", "-f", "-"}, wantCode: 2, wantErr: []string{"-: document 1: apiVersion and kind are required"}},
		"empty input":                           {stdin: "---\n", args: []string{"check", "-f", "-"}, wantCode: 2, wantErr: []string{"no objects in the input"}},
		"no input named":                        {args: []string{"check"}, wantCode: 2, wantErr: []string{"no input"}},
		"missing file":                          {args: []string{"check", "-f", filepath.Join(dir, "absent.yaml")}, wantCode: 2, wantErr: []string{"absent.yaml", "no such file"}},
		"missing policy":                        {stdin: pinnedPod, args: []string{"check", "-f", "-", "--policy", filepath.Join(dir, "absent.yaml")}, wantCode: 2, wantErr: []string{"--policy", "absent.yaml"}},
		"invalid policy":                        {args: []string{"policy", "validate", writeFile(t, dir, "bad.yaml", "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nchecks:\n  digest:\n    mode: block\n")}, wantCode: 2, wantErr: []string{"checks.digest.mode"}},
		"unknown output":                        {stdin: pinnedPod, args: []string{"check", "-f", "-", "-o", "xml"}, wantCode: 2, wantErr: []string{"--output"}},
		"unknown flag":                          {args: []string{"check", "--bogus"}, wantCode: 2, wantErr: []string{"unknown flag"}},
		"valid policy":                          {args: []string{"policy", "validate", warnPolicy}, wantCode: 0},
		"skipped kinds alone":                   {stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", args: []string{"check", "-f", "-"}, wantCode: 0},
		"DeploymentList":                        {stdin: "apiVersion: apps/v1\nkind: DeploymentList\nitems:\n  - " + strings.ReplaceAll(unpinnedDeployment, "\n", "\n    "), args: []string{"check", "-f", "-"}, wantCode: 1},
		"removed version":                       {stdin: "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: c}\n", args: []string{"check", "-f", "-"}, wantCode: 2, wantErr: []string{"-: document 1: batch/v1beta1 CronJob is not a version bulwark judges"}},
		"no pod template":                       {stdin: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  templates: {}\n", args: []string{"check", "-f", "-"}, wantCode: 2, wantErr: []string{"-: document 1", "no pod template"}},
		"namespace exemption without the right": {stdin: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: sandbox\n  annotations: {bulwark.dev/exempt: digest, bulwark.dev/exempt-reason: x, bulwark.dev/exempt-until: '2026-12-01'}\n", args: []string{"check", "-f", "-", "--now", "2026-11-26T00:00:00Z"}, wantCode: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.stdin, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
			if tc.wantCode == 2 && strings.Contains(out, "admitted") {
				t.Errorf("an input error reported something as admitted: %s", out)
			}
		})
	}
}

func TestPolicyDefaultsRoundTrip(t *testing.T) {
	code, out, _ := runCLI(t, "", "policy", "defaults")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	p := writeFile(t, t.TempDir(), "defaults.yaml", out)
	if code, _, errOut := runCLI(t, "", "policy", "validate", p); code != 0 {
		t.Errorf("printed defaults do not validate: %s", errOut)
	}
}

// sarifSchema returns the official SARIF 2.1.0 JSON schema, as the go-sarif module
// in the module cache ships it.
func sarifSchema(t *testing.T) string {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/owenrumney/go-sarif/v3").Output()
	if err != nil {
		t.Fatalf("find the go-sarif module: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "pkg", "report", "v210", "sarif", "schema.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)const schema = `(.*)`").FindSubmatch(src)
	if m == nil || !bytes.Contains(m[1], []byte("sarif-schema-2.1.0.json")) {
		t.Fatal("no SARIF 2.1.0 schema in go-sarif")
	}
	return string(m[1])
}

func TestSARIFIsValidAndPointsAtTheLine(t *testing.T) {
	dir := t.TempDir()
	content := pinnedPod + "---\n" + unpinnedDeployment
	file := writeFile(t, dir, "app.yaml", content)
	code, out, errOut := runCLI(t, "", "check", "-f", file, "-o", "sarif")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (denied): %s", code, errOut)
	}
	res, err := gojsonschema.Validate(gojsonschema.NewStringLoader(sarifSchema(t)), gojsonschema.NewStringLoader(out))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid() {
		t.Fatalf("SARIF output is not valid against the 2.1.0 schema: %v\n%s", res.Errors(), out)
	}

	var log sarifLog
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 1 || len(log.Runs[0].Results) != 1 {
		t.Fatalf("want one result, got %s", out)
	}
	r := log.Runs[0].Results[0]
	// The unpinned image's line in the file the user wrote.
	wantLine := 0
	for i, l := range strings.Split(content, "\n") {
		if strings.Contains(l, "image: nginx:1.27") {
			wantLine = i + 1
		}
	}
	loc := r.Locations[0].PhysicalLocation
	if r.RuleID != "digest/ImageNotPinned" || r.Level != "error" || loc.Region.StartLine != wantLine || !strings.HasSuffix(loc.ArtifactLocation.URI, "app.yaml") {
		t.Errorf("result %+v; want digest/ImageNotPinned, error, app.yaml line %d", r, wantLine)
	}
}

func TestExemptRightFlag(t *testing.T) {
	manifest := strings.Replace(unpinnedDeployment, "      labels: {app: web}\n", `      labels: {app: web}
      annotations:
        bulwark.dev/exempt: digest
        bulwark.dev/exempt-reason: "OPS-1"
        bulwark.dev/exempt-until: "2026-12-31"
`, 1)
	if code, out, _ := runCLI(t, manifest, "check", "-f", "-", "--now", "2026-11-26T12:00:00Z"); code != 1 || !strings.Contains(out, `user "ci" may not grant exemptions from digest`) {
		t.Errorf("without the right: exit %d, %s", code, out)
	}
	if code, out, errOut := runCLI(t, manifest, "check", "-f", "-", "--now", "2026-11-26T12:00:00Z", "--exempt-right", "-o", "json"); code != 0 || !strings.Contains(out, `"action": "exempt"`) {
		t.Errorf("with the right: exit %d, %s %s", code, out, errOut)
	}
	code, out, _ := runCLI(t, manifest, "check", "-f", "-", "--now", "2026-11-26T12:00:00Z", "--exempt-right", "-o", "sarif")
	if code != 0 || !strings.Contains(out, `"suppressions"`) || !strings.Contains(out, "reason: OPS-1") {
		t.Errorf("with the right, SARIF: exit %d, want a suppressed result justified by the exemption:\n%s", code, out)
	}
	res, err := gojsonschema.Validate(gojsonschema.NewStringLoader(sarifSchema(t)), gojsonschema.NewStringLoader(out))
	if err != nil || !res.Valid() {
		t.Errorf("SARIF with suppressions not valid: %v %v", err, res.Errors())
	}
	if code, out, _ := runCLI(t, manifest, "check", "-f", "-", "--now", "2027-01-02T00:00:00Z", "--exempt-right"); code != 1 || !strings.Contains(out, "has passed") {
		t.Errorf("after expiry: exit %d, %s", code, out)
	}
}

// TestEverySARIFResultPointsAtItsLine: several findings in several documents, each
// result's region must be the line of its own field.
func TestEverySARIFResultPointsAtItsLine(t *testing.T) {
	content := `apiVersion: v1
kind: Pod
metadata:
  name: many
spec:
  initContainers:
    - name: init
      image: busybox:1.36 # finding 1
  containers:
    - name: web
      image: registry.example/demo/web:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
      securityContext:
        readOnlyRootFilesystem: false # finding 2
        allowPrivilegeEscalation: true # finding 3
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: job
              image: alpine:3.20 # finding 4
`
	file := writeFile(t, t.TempDir(), "many.yaml", content)
	code, out, errOut := runCLI(t, "", "check", "-f", file, "-o", "sarif")
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	res, err := gojsonschema.Validate(gojsonschema.NewStringLoader(sarifSchema(t)), gojsonschema.NewStringLoader(out))
	if err != nil || !res.Valid() {
		t.Fatalf("invalid SARIF: %v %v", err, res.Errors())
	}
	var log sarifLog
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(content, "\n")
	var got []int
	for _, r := range log.Runs[0].Results {
		n := r.Locations[0].PhysicalLocation.Region.StartLine
		got = append(got, n)
		if n < 1 || n > len(lines) || !strings.Contains(lines[n-1], "# finding") {
			t.Errorf("result at line %d: %q is not a finding's line", n, lines[max(n-1, 0)])
		}
	}
	if len(got) != 4 {
		t.Errorf("got %d results at lines %v, want 4", len(got), got)
	}
}

// sarifLog is the part of a SARIF log the tests read.
type sarifLog struct {
	Runs []struct {
		Results []struct {
			RuleID    string `json:"ruleId"`
			Level     string `json:"level"`
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct{ URI string }    `json:"artifactLocation"`
					Region           struct{ StartLine int } `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
		} `json:"results"`
	} `json:"runs"`
}
