package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xeipuuv/gojsonschema"

	"github.com/bulwark-dev/bulwark/tests/oci"
	"github.com/bulwark-dev/bulwark/tests/vulndb"
)

// TestScanJudgesFindingsByThePolicy scans an image served by an in-process TLS
// registry with the real grype matcher on a database the test writes, and
// judges it with the policy's vulnerabilities check.
func TestScanJudgesFindingsByThePolicy(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	vulndb.Write(t, db, vulndb.Vuln{ID: "CVE-2026-0001", Severity: "critical", CVSS: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		Ecosystem: "apk", Distro: "alpine", Version: "3.20", Package: "openssl", Constraint: "< 3.3.2-r0", FixedIn: "3.3.2-r0"},
		vulndb.Vuln{ID: "CVE-2026-0002", Severity: "high", Ecosystem: "apk", Distro: "alpine", Version: "3.20", Package: "busybox", Constraint: "< 1.37.0-r0", FixedIn: "1.37.0-r0"})
	reg := oci.NewRegistry(t)
	ca := writeFile(t, dir, "ca.pem", string(reg.CAPEM))
	d := reg.Push(t, "team/app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "openssl", Version: "3.3.1-r0"}, vulndb.Package{Name: "busybox", Version: "1.36.1-r0"}))
	addresses := "registry:\n  allowAddresses: [127.0.0.1]\n"
	defaults := writeFile(t, dir, "defaults.yaml", "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\n"+addresses)
	accepted := writeFile(t, dir, "accepted.yaml", "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\n"+addresses+
		"checks:\n  vulnerabilities:\n    ignore:\n    - id: CVE-2026-0001\n      reason: TICKET-42\n      expires: "+time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339)+"\n")

	code, out, errOut := runCLI(t, "", "scan", d.String(), "--db", db, "--registry-ca-file", ca, "--policy", defaults)
	if code != exitDenied {
		t.Fatalf("exit %d, want 1 (denied): %s\n%s", code, errOut, out)
	}
	for _, want := range []string{"CVE-2026-0001", "Critical", "9.8", "openssl", "3.3.1-r0", "3.3.2-r0", "deny", "CVE-2026-0002", "below threshold"} {
		if !strings.Contains(out, want) {
			t.Errorf("table does not contain %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCLI(t, "", "scan", d.String(), "--db", db, "--registry-ca-file", ca, "--policy", accepted, "-o", "sarif")
	if code != exitAdmitted {
		t.Fatalf("with an ignore rule: exit %d, want 0: %s\n%s", code, errOut, out)
	}
	res, err := gojsonschema.Validate(gojsonschema.NewStringLoader(sarifSchema(t)), gojsonschema.NewStringLoader(out))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid() {
		t.Fatalf("SARIF not valid against the 2.1.0 schema: %v\n%s", res.Errors(), out)
	}
	if !strings.Contains(out, `"justification": "TICKET-42"`) {
		t.Errorf("the accepted finding is not a suppressed result with its reason:\n%s", out)
	}

	for name, args := range map[string][]string{
		"tag, not digest": {"scan", reg.Host + "/team/app:latest", "--db", db},
		"missing db":      {"scan", d.String(), "--db", filepath.Join(dir, "nope")},
		"no db flag":      {"scan", d.String()},
	} {
		if code, _, errOut := runCLI(t, "", args...); code != exitInput {
			t.Errorf("%s: exit %d, want 2: %s", name, code, errOut)
		}
	}
}

// TestCheckRunsTheRegistryAndScanChecksWhenAsked judges a manifest whose image is
// unsigned and vulnerable: offline, those checks are skipped with a note; with
// --registry and --db they run as in the webhook.
func TestCheckRunsTheRegistryAndScanChecksWhenAsked(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	vulndb.Write(t, db, vulndb.Vuln{ID: "CVE-2026-0001", Severity: "critical", Ecosystem: "apk", Distro: "alpine", Version: "3.20",
		Package: "openssl", Constraint: "< 3.3.2-r0", FixedIn: "3.3.2-r0"})
	reg := oci.NewRegistry(t)
	ca := writeFile(t, dir, "ca.pem", string(reg.CAPEM))
	d := reg.Push(t, "team/app", "", vulndb.Alpine(t, vulndb.AMD64, "3.20.3", vulndb.Package{Name: "openssl", Version: "3.3.1-r0"}))
	key := oci.NewKey(t)
	pol := writeFile(t, dir, "policy.yaml", "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\n"+
		"registry:\n  allow: ['"+reg.Host+"']\n  allowAddresses: [127.0.0.1]\n"+
		"checks:\n  vulnerabilities:\n    enabled: true\n  signature:\n    enabled: true\n    rules:\n    - name: team\n      images: ['**']\n      authorities:\n      - name: release\n        key:\n          pem: |\n"+
		indent(key.PublicPEM, "            "))
	pod := writeFile(t, dir, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n  - name: app\n    image: "+d.String()+"\n")

	code, out, errOut := runCLI(t, "", "check", "-f", pod, "--policy", pol)
	if code != exitAdmitted || !strings.Contains(errOut, "the signature check is skipped: it needs --registry") || !strings.Contains(errOut, "the vulnerabilities check is skipped: it needs --db") {
		t.Errorf("offline: exit %d, want 0 with the skipped checks named:\n%s\n%s", code, errOut, out)
	}
	code, out, errOut = runCLI(t, "", "check", "-f", pod, "--policy", pol, "--registry", "--db", db, "--registry-ca-file", ca)
	if code != exitDenied {
		t.Fatalf("online: exit %d, want 1: %s\n%s", code, errOut, out)
	}
	for _, want := range []string{"image is not signed", "CVE-2026-0001", "openssl 3.3.1-r0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q:\n%s", want, out)
		}
	}
}

func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix + line)
	}
	return b.String()
}
