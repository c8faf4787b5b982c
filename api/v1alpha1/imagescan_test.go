package v1alpha1

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestNameFor(t *testing.T) {
	tests := map[string]struct {
		digest  string
		want    string
		wantErr bool
	}{
		"sha256 digest":         {digest: "sha256:" + hex64, want: "sha256-" + hex64},
		"empty":                 {digest: "", wantErr: true},
		"hex without algorithm": {digest: hex64, wantErr: true},
		"full reference":        {digest: "registry.example/app@sha256:" + hex64, wantErr: true},
		"upper-case hex":        {digest: "sha256:" + strings.ToUpper(hex64), wantErr: true},
		"upper-case algorithm":  {digest: "SHA256:" + hex64, wantErr: true},
		"63 hex":                {digest: "sha256:" + hex64[1:], wantErr: true},
		"65 hex":                {digest: "sha256:" + hex64 + "0", wantErr: true},
		"non-hex":               {digest: "sha256:" + hex64[1:] + "g", wantErr: true},
		"sha512":                {digest: "sha512:" + hex64 + hex64, wantErr: true},
		"trailing newline":      {digest: "sha256:" + hex64 + "\n", wantErr: true},
		"already a name":        {digest: "sha256-" + hex64, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := NameFor(tc.digest)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NameFor(%q) = %q, %v; want error %v", tc.digest, got, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("NameFor(%q) = %q, want %q", tc.digest, got, tc.want)
			}
		})
	}
}

// FuzzNameFor: whatever the input, NameFor either refuses it or returns a name the API
// server accepts for a cluster-scoped object and that maps back to the same digest.
func FuzzNameFor(f *testing.F) {
	f.Add("sha256:" + hex64)
	f.Add("sha256:" + strings.ToUpper(hex64))
	f.Add("repo@sha256:" + hex64)
	f.Add("")
	name := regexp.MustCompile(`^sha256-[a-f0-9]{64}$`)
	f.Fuzz(func(t *testing.T, digest string) {
		got, err := NameFor(digest)
		if err != nil {
			return
		}
		if !name.MatchString(got) || "sha256:"+got[len("sha256-"):] != digest {
			t.Fatalf("NameFor(%q) = %q", digest, got)
		}
	})
}

func fullScan() *ImageScan {
	at := func(s string) *metav1.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return &metav1.Time{Time: tm}
	}
	return &ImageScan{
		TypeMeta:   metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: ImageScanKind},
		ObjectMeta: metav1.ObjectMeta{Name: "sha256-" + hex64, Generation: 1},
		Spec: ImageScanSpec{
			Image: "registry.example:5000/team/app@sha256:" + hex64,
			Credentials: &ScanCredentials{
				Namespace:          "team-a",
				ServiceAccountName: "app",
				ImagePullSecrets:   []string{"regcred", "mirror"},
			},
			Platforms: []string{"linux/amd64", "linux/arm/v7"},
		},
		Status: ImageScanStatus{
			Phase:        ScanComplete,
			ClaimedBy:    "bulwark-scanner-7d9f-x2",
			ClaimExpires: at("2026-11-26T10:05:00Z"),
			Attempts:     2,
			Scanner:      "grype v0.121.2",
			DBBuilt:      at("2026-11-25T06:00:00Z"),
			ScannedAt:    at("2026-11-26T10:01:30Z"),
			Counts:       SeverityCounts{Critical: 1, High: 2, Medium: 3, Low: 4, Negligible: 5, Unknown: 6},
			Findings: []Finding{{
				ID: "CVE-2024-3094", Severity: "Critical", CVSS: "10.0", Package: "xz-utils", Type: "deb",
				Installed: "5.6.0-0.2", FixedIn: "5.6.1+really5.4.5-1", Platform: "linux/amd64", IgnoredBy: "",
			}, {
				ID: "GHSA-xxxx-yyyy-zzzz", Severity: "High", CVSS: "7.5", Package: "golang.org/x/net", Type: "go-module",
				Installed: "v0.20.0", Platform: "linux/arm/v7", IgnoredBy: "accepted-risk-net",
			}},
			FindingsOmitted:    19,
			Reason:             "ExceedsScanLimits",
			Message:            "only the first 200 findings are listed",
			ObservedGeneration: 1,
		},
	}
}

// TestImageScanRoundTripsThroughJSON decodes what the types encode, through the same
// scheme and codec a client uses, and gets every field back.
func TestImageScanRoundTripsThroughJSON(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	in := fullScan()
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	obj, gvk, err := serializer.NewCodecFactory(scheme).UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if want := SchemeGroupVersion.WithKind(ImageScanKind); *gvk != want {
		t.Errorf("decoded kind %v, want %v", *gvk, want)
	}
	out, ok := obj.(*ImageScan)
	if !ok {
		t.Fatalf("decoded %T, want *ImageScan", obj)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-sent +decoded):\n%s", diff)
	}
}

// TestImageScanJSONOmitsWhatIsUnset pins the wire names, and shows that a new object
// carries no status (a webhook replica creates it with the spec only).
func TestImageScanJSONOmitsWhatIsUnset(t *testing.T) {
	in := &ImageScan{
		TypeMeta:   metav1.TypeMeta{APIVersion: "bulwark.dev/v1alpha1", Kind: "ImageScan"},
		ObjectMeta: metav1.ObjectMeta{Name: "sha256-" + hex64},
		Spec:       ImageScanSpec{Image: "r.example/a@sha256:" + hex64},
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"ImageScan","apiVersion":"bulwark.dev/v1alpha1","metadata":{"name":"sha256-` + hex64 + `"},"spec":{"image":"r.example/a@sha256:` + hex64 + `"}}`
	if string(data) != want {
		t.Errorf("got  %s\nwant %s", data, want)
	}

	in.Status.Counts.High = 1
	data, err = json.Marshal(in.Status)
	if err != nil {
		t.Fatal(err)
	}
	// Every count is written once counts are: a printer column shows 0, not <none>.
	if want := `{"counts":{"critical":0,"high":1,"medium":0,"low":0,"negligible":0,"unknown":0}}`; string(data) != want {
		t.Errorf("got  %s\nwant %s", data, want)
	}
}

func TestImageScanDeepCopyIsIndependent(t *testing.T) {
	in := fullScan()
	out := in.DeepCopy()
	out.Spec.Credentials.ImagePullSecrets[0] = "changed"
	out.Spec.Platforms[0] = "changed"
	out.Status.Findings[0].ID = "changed"
	out.Status.DBBuilt.Time = time.Time{}
	if diff := cmp.Diff(fullScan(), in); diff != "" {
		t.Errorf("changing the copy changed the original (-want +got):\n%s", diff)
	}
	list := &ImageScanList{Items: []ImageScan{*in}}
	if _, ok := list.DeepCopyObject().(*ImageScanList); !ok {
		t.Errorf("ImageScanList.DeepCopyObject returned %T", list.DeepCopyObject())
	}
}
