package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// maxReviewBytes bounds a review: an object and its old version, each at most
// etcd's 1.5 MiB request limit, plus the envelope.
const maxReviewBytes = 7 << 20

// ServeHTTP decodes an admission.k8s.io/v1 AdmissionReview, decides it and writes
// the review's response. It decodes the body once; controller-runtime's
// admission.Webhook decodes it twice (once to sniff the version) and that was a
// third of bulwark's CPU per request (docs/benchmarks.md). Its Request and Response
// types and helpers are used as they are.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an admission.k8s.io/v1 AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		writeReview(w, "", admission.Errored(http.StatusBadRequest, fmt.Errorf("content type %q, want application/json", ct)))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	switch {
	case err != nil:
		writeReview(w, "", admission.Errored(http.StatusBadRequest, fmt.Errorf("read request: %w", err)))
		return
	case len(body) > maxReviewBytes:
		writeReview(w, "", admission.Errored(http.StatusRequestEntityTooLarge, fmt.Errorf("request is larger than %d bytes", maxReviewBytes)))
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		writeReview(w, "", admission.Errored(http.StatusBadRequest, fmt.Errorf("decode AdmissionReview: %w", err)))
		return
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" || review.Request == nil {
		writeReview(w, "", admission.Errored(http.StatusBadRequest, errors.New("not an admission.k8s.io/v1 AdmissionReview with a request")))
		return
	}
	req := admission.Request{AdmissionRequest: *review.Request}
	ctx := logf.IntoContext(r.Context(), h.log.WithValues("uid", req.UID))
	writeReview(w, req.UID, h.handleRecovering(ctx, req))
}

// handleRecovering is Handle that turns a panic into a refusal: fail closed.
func (h *Handler) handleRecovering(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer func() {
		if v := recover(); v != nil {
			logf.FromContext(ctx).Error(fmt.Errorf("%v", v), "Panic while deciding")
			resp = admission.Errored(http.StatusInternalServerError, errors.New("internal error"))
		}
	}()
	return h.Handle(ctx, req)
}

func writeReview(w http.ResponseWriter, uid types.UID, resp admission.Response) {
	resp.UID = uid
	if len(resp.Patches) > 0 {
		patch, err := json.Marshal(resp.Patches)
		if err != nil {
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("encode patch: %w", err))
			resp.UID = uid
		} else {
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
		}
	}
	if resp.Result == nil {
		resp.Result = &metav1.Status{}
	}
	if resp.Result.Code == 0 {
		resp.Result.Code = http.StatusOK
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: &resp.AdmissionResponse,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		// The connection is gone; the API server applies its failure policy.
		return
	}
}
