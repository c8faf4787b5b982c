package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDefaultsGolden pins the documented defaults: a security default must never
// change without this file changing too. UPDATE_GOLDEN=1 rewrites it.
func TestDefaultsGolden(t *testing.T) {
	got, err := json.MarshalIndent(Defaults(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "defaults.golden.json")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.TrimSpace(string(want)), string(got)); diff != "" {
		t.Errorf("defaults changed (-golden +now):\n%s", diff)
	}
}

func TestParse(t *testing.T) {
	tests := map[string]struct {
		in      string
		wantErr string
		check   func(t *testing.T, p *Policy)
	}{
		"header only gives defaults": {
			in: "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\n",
			check: func(t *testing.T, p *Policy) {
				if diff := cmp.Diff(Defaults(), *p); diff != "" {
					t.Errorf("(-defaults +parsed):\n%s", diff)
				}
			},
		},
		"override keeps other defaults": {
			in: "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nchecks:\n  hardening:\n    mode: warn\n    tmpEmptyDir: true\n",
			check: func(t *testing.T, p *Policy) {
				want := Defaults()
				want.Checks.Hardening.Mode = ModeWarn
				want.Checks.Hardening.TmpEmptyDir = true
				if diff := cmp.Diff(want, *p); diff != "" {
					t.Errorf("(-want +parsed):\n%s", diff)
				}
			},
		},
		"bad mode names the field": {
			in:      "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nchecks:\n  digest:\n    mode: block\n",
			wantErr: `invalid policy: checks.digest.mode: Unsupported value: "block": supported values: "enforce", "warn", "audit"`,
		},
		"unknown field names the field": {
			in:      "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nchecks:\n  hardening:\n    readOnlyRootFileSystem: false\n",
			wantErr: `unknown field "checks.hardening.readOnlyRootFileSystem"`,
		},
		"wrong apiVersion": {
			in:      "apiVersion: v1\nkind: Policy\n",
			wantErr: `apiVersion: Unsupported value: "v1": supported values: "bulwark.dev/v1alpha1"`,
		},
		"missing header": {
			in:      "checks: {}\n",
			wantErr: "", // header defaults are filled in: a bare policy is valid
		},
		"not yaml": {
			in:      "checks: [",
			wantErr: "parse policy:",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := Parse([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestParseRejectsOversizedPolicy(t *testing.T) {
	_, err := Parse(make([]byte, MaxPolicyBytes+1))
	if err == nil || !strings.Contains(err.Error(), "more than the limit") {
		t.Fatalf("err = %v, want a size error", err)
	}
}
