package admission

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/bulwark-dev/bulwark/pkg/policy"
)

func TestServeHTTPRefusesWhatIsNotAReview(t *testing.T) {
	h, _ := newTestHandler(t, policy.StageValidate)
	tests := map[string]struct {
		method, contentType string
		body                []byte
		wantHTTP            int
		wantMessage         string
	}{
		"GET":           {method: http.MethodGet, contentType: "application/json", wantHTTP: http.StatusMethodNotAllowed},
		"content type":  {method: http.MethodPost, contentType: "text/plain", body: []byte("{}"), wantHTTP: 200, wantMessage: `content type "text/plain", want application/json`},
		"not JSON":      {method: http.MethodPost, contentType: "application/json", body: []byte("{"), wantHTTP: 200, wantMessage: "decode AdmissionReview"},
		"no request":    {method: http.MethodPost, contentType: "application/json", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), wantHTTP: 200, wantMessage: "not an admission.k8s.io/v1 AdmissionReview with a request"},
		"v1beta1":       {method: http.MethodPost, contentType: "application/json", body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), wantHTTP: 200, wantMessage: "not an admission.k8s.io/v1 AdmissionReview"},
		"too large":     {method: http.MethodPost, contentType: "application/json", body: bytes.Repeat([]byte(" "), maxReviewBytes+1), wantHTTP: 200, wantMessage: "request is larger than"},
		"trailing data": {method: http.MethodPost, contentType: "application/json", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"DELETE"}} {}`), wantHTTP: 200, wantMessage: "decode AdmissionReview"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/validate", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantHTTP {
				t.Fatalf("HTTP %d, want %d", rec.Code, tc.wantHTTP)
			}
			if tc.wantMessage == "" {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("not a review: %v %s", err, rec.Body)
			}
			if out.Response.Allowed || !strings.Contains(out.Response.Result.Message, tc.wantMessage) {
				t.Errorf("allowed=%v message %q, want refused with %q", out.Response.Allowed, out.Response.Result.Message, tc.wantMessage)
			}
		})
	}
}
