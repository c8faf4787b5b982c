package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

// Resolver resolves a tag to the digest it names now.
type Resolver interface {
	Resolve(ctx context.Context, tag name.Tag, kc authn.Keychain) (name.Digest, error)
}

// Keychains returns the registry credentials a pod may pull with: its
// imagePullSecrets and its service account's, from its own namespace only.
type Keychains interface {
	ForPod(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error)
}

// ScanRequest asks for the scan of one image, with where its pull credentials
// are (the pod's namespace, service account and pull secrets).
type ScanRequest struct {
	Image          name.Digest
	Namespace      string
	ServiceAccount string
	PullSecrets    []string
	Platforms      []string
}

// Scans gives the scan state of images.
type Scans interface {
	// Await returns the state of the image's scan, starting one if there is
	// none, and waits while it runs until ctx ends.
	Await(ctx context.Context, req ScanRequest) scan.State
}

// scanMargin is kept of the request's budget when waiting for scans, so that
// bulwark answers with "scan in progress" before the API server gives up.
const scanMargin = time.Second

// maxParallelRegistryWork bounds the registry work of one request.
const maxParallelRegistryWork = 4

// imageFacts verifies the signatures of every image the signature check judges
// and reads the declared base of every image the base-image check judges, into
// in.Signatures and in.Bases. An image left out (no verifier or inspector
// configured) is denied by its check: nothing on the object itself counts as
// proof.
func (h *Handler) imageFacts(ctx context.Context, req admission.Request, obj *object, p *policy.Policy, in *policy.Input) {
	sigs := policy.SignatureTargets(p, in)
	if h.verifier == nil {
		sigs = nil
	}
	bases := policy.BaseImageTargets(p, in)
	if h.inspector == nil {
		bases = nil
	}
	var scanWait sync.WaitGroup
	if vulns := policy.VulnerabilityTargets(p, in); len(vulns) > 0 && h.scans != nil {
		in.Scans = make(map[string]scan.State, len(vulns))
		var mu sync.Mutex
		waitCtx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok {
			waitCtx, cancel = context.WithDeadline(ctx, dl.Add(-scanMargin))
		}
		sa, secrets := podCredentials(obj.spec)
		for _, d := range vulns {
			scanWait.Go(func() {
				st := h.scans.Await(waitCtx, ScanRequest{Image: d, Namespace: req.Namespace, ServiceAccount: sa, PullSecrets: secrets,
					Platforms: p.Checks.Vulnerabilities.Platforms})
				mu.Lock()
				in.Scans[d.String()] = st
				mu.Unlock()
			})
		}
		defer func() { scanWait.Wait(); cancel() }()
	}
	if len(sigs)+len(bases) == 0 {
		return
	}
	in.Signatures = make(map[string]verify.Result, len(sigs))
	in.Bases = make(map[string]verify.Base, len(bases))
	kc, err := h.podKeychain(ctx, req.Namespace, obj.spec)
	if err != nil {
		for _, t := range sigs {
			in.Signatures[t.Image.String()] = verify.Result{Outcome: verify.Unavailable, Detail: err.Error()}
		}
		for _, d := range bases {
			in.Bases[d.String()] = verify.Base{Outcome: verify.Unavailable, Detail: err.Error()}
		}
		return
	}
	var mu sync.Mutex
	forEachBounded(len(sigs)+len(bases), func(i int) {
		if i < len(sigs) {
			t := sigs[i]
			r := h.verifier.Verify(ctx, verify.Request{Image: t.Image, Authorities: t.Rule.Authorities, Threshold: t.Rule.Threshold,
				Attestations: t.Rule.Attestations, AllPlatforms: t.AllPlatforms, Keychain: kc})
			mu.Lock()
			in.Signatures[t.Image.String()] = r
			mu.Unlock()
			return
		}
		d := bases[i-len(sigs)]
		b := h.inspector.Base(ctx, d, kc)
		mu.Lock()
		in.Bases[d.String()] = b
		mu.Unlock()
	})
}

// resolveTags resolves, once each, the tags of in to digests (pinning: resolve),
// verifies each new digest so the validating pass finds it in the cache, and
// returns what was resolved with a warning for each tag that was not.
func (h *Handler) resolveTags(ctx context.Context, req admission.Request, obj *object, p *policy.Policy, in *policy.Input) (map[string]string, []string) {
	tags := policy.ResolveTargets(p, in)
	if len(tags) == 0 {
		return nil, nil
	}
	if h.resolver == nil {
		return nil, []string{"bulwark: tags are not resolved: no registry access is configured"}
	}
	kc, err := h.podKeychain(ctx, req.Namespace, obj.spec)
	if err != nil {
		return nil, []string{"bulwark: tags are not resolved: " + err.Error()}
	}
	resolved := make(map[string]string, len(tags))
	warnings := make([]string, len(tags))
	var mu sync.Mutex
	forEachBounded(len(tags), func(i int) {
		// One resolution per tag and request: what is verified and patched in
		// is this digest, whatever the tag points to a moment later.
		d, err := h.resolver.Resolve(ctx, tags[i], kc)
		if err != nil {
			warnings[i] = fmt.Sprintf("bulwark: could not resolve %s to a digest: %v", tags[i], err)
			return
		}
		mu.Lock()
		resolved[tags[i].String()] = d.String()
		mu.Unlock()
		if rule := p.Checks.Signature.RuleFor(d.String()); p.Checks.Signature.Enabled && rule != nil && h.verifier != nil {
			h.verifier.Verify(ctx, verify.Request{Image: d, Authorities: rule.Authorities, Threshold: rule.Threshold,
				Attestations: rule.Attestations, AllPlatforms: p.Checks.Signature.MultiArch == policy.MultiArchPlatforms, Keychain: kc})
		}
	})
	var ws []string
	for _, w := range warnings {
		if w != "" {
			ws = append(ws, w)
		}
	}
	return resolved, ws
}

// podKeychain returns the credentials of the pod (or pod template) spec.
func (h *Handler) podKeychain(ctx context.Context, namespace string, spec *corev1.PodSpec) (authn.Keychain, error) {
	if h.keychains == nil {
		return authn.NewMultiKeychain(), nil
	}
	sa, secrets := podCredentials(spec)
	kc, err := h.keychains.ForPod(ctx, namespace, sa, secrets)
	if err != nil {
		return nil, fmt.Errorf("read pull secrets in namespace %s: %w", namespace, err)
	}
	return kc, nil
}

// podCredentials returns the service account and pull secrets of spec.
func podCredentials(spec *corev1.PodSpec) (string, []string) {
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	secrets := make([]string, 0, len(spec.ImagePullSecrets))
	for _, s := range spec.ImagePullSecrets {
		if s.Name != "" {
			secrets = append(secrets, s.Name)
		}
	}
	return sa, secrets
}

// forEachBounded calls fn(0..n-1) with at most maxParallelRegistryWork calls at
// once and returns when all are done.
func forEachBounded(n int, fn func(i int)) {
	sem := make(chan struct{}, maxParallelRegistryWork)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}
