package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/xeipuuv/gojsonschema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-dev/bulwark/api/v1alpha1"
)

// The generated CRD (`make generate`), and the chart's copy of it.
const (
	imageScanCRD     = "base/crds/bulwark.dev_imagescans.yaml"
	chartCRDs        = "helm/bulwark/crds"
	baseCRDs         = "base/crds"
	hex64            = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	imageScanName    = "sha256-" + hex64
	imageScanPinned  = "registry.example/team/app@sha256:" + hex64
	imageScanPattern = `^[a-zA-Z0-9][a-zA-Z0-9._/:-]*@sha256:[a-f0-9]{64}$`
)

// crd is the part of apiextensions.k8s.io/v1 CustomResourceDefinition these tests read
// (k8s.io/apiextensions-apiserver is not a dependency of the product).
type crd struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind       string   `json:"kind"`
			ListKind   string   `json:"listKind"`
			Plural     string   `json:"plural"`
			Singular   string   `json:"singular"`
			ShortNames []string `json:"shortNames"`
			Categories []string `json:"categories"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name         string `json:"name"`
			Served       bool   `json:"served"`
			Storage      bool   `json:"storage"`
			Subresources struct {
				Status *struct{} `json:"status"`
				Scale  any       `json:"scale"`
			} `json:"subresources"`
			AdditionalPrinterColumns []printerColumn `json:"additionalPrinterColumns"`
			Schema                   struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

type printerColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	JSONPath string `json:"jsonPath"`
}

func loadImageScanCRD(t *testing.T) *crd {
	t.Helper()
	data, err := os.ReadFile(imageScanCRD)
	if err != nil {
		t.Fatalf("%v (run `make generate`)", err)
	}
	var c crd
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("parse %s: %v", imageScanCRD, err)
	}
	if len(c.Spec.Versions) != 1 {
		t.Fatalf("%s: %d versions, want 1", imageScanCRD, len(c.Spec.Versions))
	}
	return &c
}

// TestImageScanCRDIsClusterScopedV1alpha1 checks the identity of the CRD that clients
// and RBAC rules rely on: group, names, scope, and one served storage version with a
// status subresource (so a webhook replica cannot write a scan result with the spec).
func TestImageScanCRDIsClusterScopedV1alpha1(t *testing.T) {
	c := loadImageScanCRD(t)
	v := c.Spec.Versions[0]
	type identity struct {
		APIVersion, Kind, Name, Group, Scope       string
		NamesKind, ListKind, Plural, Singular      string
		ShortNames, Categories                     []string
		Version                                    string
		Served, Storage, StatusSubresource, Scales bool
	}
	got := identity{
		c.APIVersion, c.Kind, c.Metadata.Name, c.Spec.Group, c.Spec.Scope,
		c.Spec.Names.Kind, c.Spec.Names.ListKind, c.Spec.Names.Plural, c.Spec.Names.Singular,
		c.Spec.Names.ShortNames, c.Spec.Names.Categories,
		v.Name, v.Served, v.Storage, v.Subresources.Status != nil, v.Subresources.Scale != nil,
	}
	want := identity{
		"apiextensions.k8s.io/v1", "CustomResourceDefinition", "imagescans.bulwark.dev", v1alpha1.GroupName, "Cluster",
		v1alpha1.ImageScanKind, v1alpha1.ImageScanListKind, v1alpha1.ImageScanResource, "imagescan",
		[]string{"iscan"}, []string{"bulwark"},
		v1alpha1.SchemeGroupVersion.Version, true, true, true, false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", imageScanCRD, diff)
	}
}

// TestImageScanCRDPrinterColumns pins what `kubectl get imagescans` shows.
func TestImageScanCRDPrinterColumns(t *testing.T) {
	c := loadImageScanCRD(t)
	want := []printerColumn{
		{"Image", "string", ".spec.image"},
		{"Phase", "string", ".status.phase"},
		{"Critical", "integer", ".status.counts.critical"},
		{"High", "integer", ".status.counts.high"},
		{"Age", "date", ".metadata.creationTimestamp"},
		{"DB", "date", ".status.dbBuilt"},
	}
	if diff := cmp.Diff(want, c.Spec.Versions[0].AdditionalPrinterColumns); diff != "" {
		t.Errorf("printer columns (-want +got):\n%s", diff)
	}
}

// TestImageScanCRDValidatesNameAndImmutableImage checks that the CEL rules the API
// server enforces are in the schema: the name is the digest of spec.image, and
// spec.image never changes. The name rule is skipped while spec.image is not a digest
// reference, which the pattern reports (so no "index out of range" reaches the user).
// Evaluating the rules needs an API server: tests/e2e.
func TestImageScanCRDValidatesNameAndImmutableImage(t *testing.T) {
	s := loadImageScanCRD(t).Spec.Versions[0].Schema.OpenAPIV3Schema
	image := path(t, s, "properties", "spec", "properties", "image")
	got := map[string]any{
		"root rules":    s["x-kubernetes-validations"],
		"image rules":   image["x-kubernetes-validations"],
		"image pattern": image["pattern"],
		"required":      s["required"],
		"spec required": path(t, s, "properties", "spec")["required"],
	}
	want := map[string]any{
		"root rules": []any{map[string]any{
			"rule":    "!self.spec.image.matches('@sha256:[a-f0-9]{64}$') || self.metadata.name == 'sha256-' + self.spec.image.substring(self.spec.image.size() - 64)",
			"message": "metadata.name must be sha256-<hex> of the digest in spec.image",
		}},
		"image rules":   []any{map[string]any{"rule": "self == oldSelf", "message": "image is immutable"}},
		"image pattern": imageScanPattern,
		"required":      []any{"spec"},
		"spec required": []any{"image"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("validation (-want +got):\n%s", diff)
	}
}

// TestImageScanCRDBoundsEveryStringAndList: every string has a maxLength (or is an enum
// or a timestamp) and every list a maxItems, so that the API server can bound the
// cost of CEL rules and one object cannot approach etcd's size limit.
func TestImageScanCRDBoundsEveryStringAndList(t *testing.T) {
	s := loadImageScanCRD(t).Spec.Versions[0].Schema.OpenAPIV3Schema
	var walk func(at string, s map[string]any)
	walk = func(at string, s map[string]any) {
		switch s["type"] {
		case "string":
			_, max := s["maxLength"]
			_, enum := s["enum"]
			if !max && !enum && s["format"] != "date-time" && at != ".apiVersion" && at != ".kind" {
				t.Errorf("%s: string without maxLength", at)
			}
		case "array":
			if _, ok := s["maxItems"]; !ok {
				t.Errorf("%s: list without maxItems", at)
			}
			if items, ok := s["items"].(map[string]any); ok {
				walk(at+"[*]", items)
			}
		}
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			walk(at+"."+name, p.(map[string]any))
		}
	}
	walk("", s)
}

// TestImageScanSchemaAcceptsWhatTheTypesWrite validates objects encoded from the Go
// types against the CRD's structural schema (patterns, enums, bounds, required fields;
// not the CEL rules nor x-kubernetes-list-type, which only the API server applies): a
// complete scan is accepted, and each broken field is refused.
func TestImageScanSchemaAcceptsWhatTheTypesWrite(t *testing.T) {
	schemaJSON, err := json.Marshal(loadImageScanCRD(t).Spec.Versions[0].Schema.OpenAPIV3Schema)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(schemaJSON))
	if err != nil {
		t.Fatalf("the openAPIV3Schema does not load as a JSON schema: %v", err)
	}
	tests := map[string]struct {
		edit    func(*v1alpha1.ImageScan)
		wantErr string // the schema error's field, "" when valid
	}{
		"complete scan":                 {edit: func(*v1alpha1.ImageScan) {}},
		"new, no status":                {edit: func(s *v1alpha1.ImageScan) { s.Status = v1alpha1.ImageScanStatus{} }},
		"no credentials":                {edit: func(s *v1alpha1.ImageScan) { s.Spec.Credentials = nil }},
		"tag and digest":                {edit: func(s *v1alpha1.ImageScan) { s.Spec.Image = "registry.example/app:1.2@sha256:" + hex64 }},
		"200 findings":                  {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings = findings(200) }},
		"cvss 0":                        {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings[0].CVSS = "0" }},
		"image without digest":          {edit: func(s *v1alpha1.ImageScan) { s.Spec.Image = "registry.example/app:1.2" }, wantErr: "spec.image"},
		"image digest only":             {edit: func(s *v1alpha1.ImageScan) { s.Spec.Image = "sha256:" + hex64 }, wantErr: "spec.image"},
		"image upper hex":               {edit: func(s *v1alpha1.ImageScan) { s.Spec.Image = "r.example/a@sha256:" + strings.ToUpper(hex64) }, wantErr: "spec.image"},
		"image sha512":                  {edit: func(s *v1alpha1.ImageScan) { s.Spec.Image = "r.example/a@sha512:" + hex64 + hex64 }, wantErr: "spec.image"},
		"image empty":                   {edit: func(s *v1alpha1.ImageScan) { s.Spec.Image = "" }, wantErr: "spec.image"},
		"credentials without namespace": {edit: func(s *v1alpha1.ImageScan) { s.Spec.Credentials.Namespace = "" }, wantErr: "spec.credentials.namespace"},
		"namespace not a label":         {edit: func(s *v1alpha1.ImageScan) { s.Spec.Credentials.Namespace = "Team_A" }, wantErr: "spec.credentials.namespace"},
		"platform without arch":         {edit: func(s *v1alpha1.ImageScan) { s.Spec.Platforms = []string{"linux"} }, wantErr: "spec.platforms.0"},
		"unknown phase":                 {edit: func(s *v1alpha1.ImageScan) { s.Status.Phase = "Done" }, wantErr: "status.phase"},
		"201 findings":                  {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings = findings(201) }, wantErr: "status.findings"},
		"unknown severity":              {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings[0].Severity = "critical" }, wantErr: "status.findings.0.severity"},
		"cvss float noise":              {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings[0].CVSS = "9.80" }, wantErr: "status.findings.0.cvss"},
		"cvss above 10":                 {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings[0].CVSS = "10.5" }, wantErr: "status.findings.0.cvss"},
		"finding without id":            {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings[0].ID = "" }, wantErr: "status.findings.0.id"},
		"long package":                  {edit: func(s *v1alpha1.ImageScan) { s.Status.Findings[0].Package = strings.Repeat("p", 257) }, wantErr: "status.findings.0.package"},
		"reason not CamelCase":          {edit: func(s *v1alpha1.ImageScan) { s.Status.Reason = "registry unavailable" }, wantErr: "status.reason"},
		"long message":                  {edit: func(s *v1alpha1.ImageScan) { s.Status.Message = strings.Repeat("m", 1025) }, wantErr: "status.message"},
		"negative count":                {edit: func(s *v1alpha1.ImageScan) { s.Status.Counts.High = -1 }, wantErr: "status.counts.high"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := completeScan()
			tc.edit(s)
			doc, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			res, err := schema.Validate(gojsonschema.NewBytesLoader(doc))
			if err != nil {
				t.Fatal(err)
			}
			var fields []string
			for _, e := range res.Errors() {
				fields = append(fields, e.Field())
			}
			switch {
			case tc.wantErr == "" && !res.Valid():
				t.Errorf("refused: %v\n%s", res.Errors(), doc)
			case tc.wantErr != "" && !slices.Contains(fields, tc.wantErr):
				t.Errorf("errors on %v, want one on %s: %v", fields, tc.wantErr, res.Errors())
			}
		})
	}
}

// TestChartCRDsEqualBase: Helm installs the chart's crds/ as it is, so it must hold
// exactly the generated CRDs (hack/gen-crds.sh copies them).
func TestChartCRDsEqualBase(t *testing.T) {
	read := func(dir string) map[string][]byte {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(f)] = data
		}
		return out
	}
	base, chart := read(baseCRDs), read(chartCRDs)
	if len(base) == 0 {
		t.Fatalf("%s is empty (run `make generate`)", baseCRDs)
	}
	for name, data := range base {
		if !bytes.Equal(data, chart[name]) {
			t.Errorf("%s/%s differs from %s/%s (run `make generate`)", chartCRDs, name, baseCRDs, name)
		}
	}
	for name := range chart {
		if _, ok := base[name]; !ok {
			t.Errorf("%s/%s is not generated (run `make generate`)", chartCRDs, name)
		}
	}
}

func completeScan() *v1alpha1.ImageScan {
	at := &metav1.Time{Time: time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)}
	return &v1alpha1.ImageScan{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.ImageScanKind},
		ObjectMeta: metav1.ObjectMeta{Name: imageScanName},
		Spec: v1alpha1.ImageScanSpec{
			Image:       imageScanPinned,
			Credentials: &v1alpha1.ScanCredentials{Namespace: "team-a", ServiceAccountName: "app", ImagePullSecrets: []string{"regcred"}},
			Platforms:   []string{"linux/amd64", "linux/arm/v7"},
		},
		Status: v1alpha1.ImageScanStatus{
			Phase: v1alpha1.ScanComplete, ClaimedBy: "scanner-0", ClaimExpires: at, Attempts: 1,
			Scanner: "grype v0.121.2", DBBuilt: at, ScannedAt: at,
			Counts:   v1alpha1.SeverityCounts{Critical: 1, High: 1},
			Findings: findings(2),
			Reason:   "ExceedsScanLimits", Message: "m", ObservedGeneration: 1,
		},
	}
}

func findings(n int) []v1alpha1.Finding {
	out := make([]v1alpha1.Finding, n)
	for i := range out {
		out[i] = v1alpha1.Finding{
			ID: "CVE-2024-3094", Severity: "Critical", CVSS: "9.8", Package: "xz-utils", Type: "deb",
			Installed: "5.6.0-0.2", FixedIn: "5.6.1", Platform: "linux/amd64", IgnoredBy: "accepted",
		}
	}
	return out
}

// path returns the sub-schema of s at keys.
func path(t *testing.T, s map[string]any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		next, ok := s[k].(map[string]any)
		if !ok {
			t.Fatalf("schema has no %s", strings.Join(keys, "."))
		}
		s = next
	}
	return s
}
