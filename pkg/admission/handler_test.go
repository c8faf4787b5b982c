package admission

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

func newTestHandler(t testing.TB, stage policy.Stage) (*Handler, *Metrics) {
	t.Helper()
	p := policy.Defaults()
	m := NewMetrics(prometheus.NewRegistry())
	return NewHandler(Options{Stage: stage, Policy: func() *policy.Policy { return &p }, Metrics: m,
		Authorizer: fakeAuthorizer{"ops": true},
		GrantKey:   []byte("golden-fixture-grant-key-32-bytes"),
		Now:        func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }}), m
}

// fakeAuthorizer grants the right to exempt every check to the users it maps to true.
type fakeAuthorizer map[string]bool

func (f fakeAuthorizer) CanExempt(_ context.Context, u authenticationv1.UserInfo, _ string, _ policy.CheckID) (bool, error) {
	return f[u.Username], nil
}

// serve posts body to h's webhook as the API server would and returns the raw
// response body.
func serve(t testing.TB, h *Handler, body []byte) []byte {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.Webhook().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// TestGoldenReviews runs every testdata/<stage>-<case>.request.json through the
// handler of that stage and compares the AdmissionReview response with
// <stage>-<case>.response.json. UPDATE_GOLDEN=1 rewrites the responses.
func TestGoldenReviews(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.request.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".request.json")
		t.Run(name, func(t *testing.T) {
			stage := policy.Stage(strings.SplitN(name, "-", 2)[0])
			h, _ := newTestHandler(t, stage)
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := readableResponse(t, serve(t, h, body))
			golden := filepath.Join("testdata", name+".response.json")
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (UPDATE_GOLDEN=1 writes it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("response differs from %s (-golden +got):\n%s", golden, diff)
			}
		})
	}
}

// readableResponse indents the review and shows its base64 JSONPatch decoded, as
// "patch (decoded)", so a reviewer can read the golden files.
func readableResponse(t testing.TB, raw []byte) []byte {
	t.Helper()
	var review map[string]any
	if err := json.Unmarshal(raw, &review); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, raw)
	}
	if resp, ok := review["response"].(map[string]any); ok {
		if p, ok := resp["patch"].(string); ok {
			decoded, err := base64.StdEncoding.DecodeString(p)
			if err != nil {
				t.Fatalf("patch is not base64: %v", err)
			}
			var ops any
			if err := json.Unmarshal(decoded, &ops); err != nil {
				t.Fatalf("patch is not JSON: %v", err)
			}
			delete(resp, "patch")
			resp["patch (decoded)"] = ops
		}
	}
	out, err := json.MarshalIndent(review, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestMetricsCountDecisionsAndVerdicts(t *testing.T) {
	h, m := newTestHandler(t, policy.StageValidate)
	body, err := os.ReadFile(filepath.Join("testdata", "validate-deployment-unpinned.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, h, body)
	serve(t, h, body)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("validate", "Deployment", "CREATE", "denied")); got != 2 {
		t.Errorf("denied requests = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.verdicts.WithLabelValues("digest", "ImageNotPinned", "deny")); got != 2 {
		t.Errorf("ImageNotPinned verdicts = %v, want 2", got)
	}
}

// FuzzReview feeds arbitrary bytes to both webhooks: they must never panic,
// always answer with an AdmissionReview, and never admit what it could not decode.
// The seed corpus is every golden request and runs in `make test`.
func FuzzReview(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.request.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"image":"@"}]}}}}`))
	f.Add([]byte(`{}`))
	validate, _ := newTestHandler(f, policy.StageValidate)
	mutate, _ := newTestHandler(f, policy.StageMutate)
	f.Fuzz(func(t *testing.T, body []byte) {
		var out admissionv1.AdmissionReview
		for _, h := range []*Handler{mutate, validate} {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.Webhook().ServeHTTP(rec, req)
			out = admissionv1.AdmissionReview{}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("%s: response is not an AdmissionReview: %v: %s", h.stage, err, rec.Body)
			}
		}
		if !out.Response.Allowed {
			return
		}
		// Admitted: the request must have been a review bulwark understood, or one
		// that starts nothing (DELETE, CONNECT, other subresources).
		var in admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
			t.Fatalf("admitted a request that is not an AdmissionReview: %q", body)
		}
	})
}
