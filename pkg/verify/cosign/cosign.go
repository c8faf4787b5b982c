// Package cosign implements verify.Verifier with sigstore's cosign library.
//
// It fetches the cosign signatures of one image digest (the sha256-<hex>.sig tag
// of the image's repository) once per digest and checks every authority against
// them with cosign's own verification functions; then, when the trust rule
// requires attestations, the in-toto attestations (the sha256-<hex>.att tag) the
// same way; and, when every platform must verify, the same for each platform
// manifest of an index. It owns loading of keys and trusted roots, and the
// classification of what it found into a verify.Outcome with a detail a user
// can act on.
//
// It must not talk to anything but the image's registry: no Fulcio, no Rekor, no
// TUF repository. Public keys, Fulcio roots and Rekor public keys are local; a
// Rekor bundle, when the trusted root asks for one, is verified offline.
package cosign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v3/pkg/oci"
	ociremote "github.com/sigstore/cosign/v3/pkg/oci/remote"
	"github.com/sigstore/cosign/v3/pkg/oci/static"

	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/verify"
)

const (
	// MaxSignatures bounds the signatures looked at for one image: a registry must
	// not be able to make admission fetch and check an unbounded list. Signatures
	// beyond it are ignored and the detail says so.
	MaxSignatures = 32
	// MaxAttestations bounds the attestations looked at for one image, as
	// MaxSignatures does the signatures.
	MaxAttestations = 32
	// MaxPlatforms bounds the platform manifests of an index verified when every
	// platform must verify. An index with more does not verify: a platform left
	// unchecked could be the one that runs.
	MaxPlatforms = 16
	// SecretKeyRefresh is how long a key read from a Secret is used before it is
	// read again.
	SecretKeyRefresh = 60 * time.Second

	// maxSignatureBytes bounds one signature payload. A cosign payload is ≈250
	// bytes; cosign's own limit (128 MiB) is far too generous for admission.
	maxSignatureBytes = 64 << 10
	// maxAttestationBytes bounds one attestation: a DSSE envelope whose
	// predicate (a SLSA provenance, an SBOM) is much bigger than a signature.
	maxAttestationBytes = 1 << 20
	// fetchParallelism bounds the concurrent blob downloads of one digest.
	fetchParallelism = 8
	// platformParallelism bounds the platform manifests verified at once.
	platformParallelism = 4
	// cosignMaxLayers is the most signature layers cosign's oci/remote lists.
	cosignMaxLayers = 1000
)

// Options configure a Verifier.
type Options struct {
	// RemoteOptions returns the go-containerregistry options for one call: the
	// guarded transport, the context and the keychain, for calls about ref
	// (pkg/registry's RemoteOptionsFor also reuses the ping and token of earlier
	// calls to ref's registry with the same credentials). Required.
	RemoteOptions func(ctx context.Context, ref name.Reference, kc authn.Keychain) []remote.Option
	// SecretKey returns the PEM of a public key stored in a Secret in bulwark's
	// namespace. Nil means authorities with a SecretRef fail to load (and so never
	// verify).
	SecretKey func(ctx context.Context, ref verify.SecretRef) ([]byte, error)
	// ReadFile reads trusted-root files; nil means os.ReadFile. Each path is read
	// once, on first use, and cached for the life of the Verifier.
	ReadFile func(path string) ([]byte, error)
}

// Verifier verifies cosign signatures of images. It is safe for concurrent use.
type Verifier struct {
	remoteOptions func(ctx context.Context, ref name.Reference, kc authn.Keychain) []remote.Option
	secretKey     func(ctx context.Context, ref verify.SecretRef) ([]byte, error)
	readFile      func(path string) ([]byte, error)
	now           func() time.Time

	mu         sync.Mutex
	pemKeys    map[string]parsedKey
	secretKeys map[verify.SecretRef]secretKey
	roots      map[string]*trustedRoot
}

var _ verify.Verifier = (*Verifier)(nil)

// New returns a Verifier configured by o.
func New(o Options) (*Verifier, error) {
	if o.RemoteOptions == nil {
		return nil, errors.New("cosign verifier: RemoteOptions is required")
	}
	readFile := o.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	return &Verifier{
		remoteOptions: o.RemoteOptions,
		secretKey:     o.SecretKey,
		readFile:      readFile,
		now:           time.Now,
		pemKeys:       map[string]parsedKey{},
		secretKeys:    map[verify.SecretRef]secretKey{},
		roots:         map[string]*trustedRoot{},
	}, nil
}

// Verify reports whether req.Image carries signatures of at least
// max(1, req.Threshold) distinct authorities of req.Authorities, and as many
// for each predicate type of req.Attestations; with req.AllPlatforms, the
// same of every platform manifest when req.Image is an index.
//
// It fetches the signatures of a digest once (one manifest and at most
// MaxSignatures blobs) whatever the number of authorities, and its
// attestations once (at most MaxAttestations blobs) whatever the number of
// predicate types, and only when the signatures verify. Every request of one
// call shares one connection and token.
func (v *Verifier) Verify(ctx context.Context, req verify.Request) verify.Result {
	if len(req.Authorities) == 0 {
		// Fail closed: a rule naming no authority can be satisfied by nobody.
		return verify.Result{Outcome: verify.Mismatch, Detail: "no authorities to verify against"}
	}
	c := &call{threshold: max(1, req.Threshold), authorities: make([]check, len(req.Authorities))}
	for i, a := range req.Authorities {
		c.authorities[i] = v.check(ctx, i, a)
	}
	seen := map[string]bool{}
	for _, pt := range req.Attestations {
		if !seen[pt] {
			seen[pt] = true
			c.predicateTypes = append(c.predicateTypes, pt)
		}
	}
	ro := v.remoteOptions(ctx, req.Image, req.Keychain)
	puller, err := remote.NewPuller(ro...)
	if err != nil {
		return registryResult(req.Image, signatures.what(req.Image), err)
	}
	c.puller = puller
	c.opts = []ociremote.Option{ociremote.WithRemoteOptions(append(slices.Clip(ro), remote.Reuse(puller))...)}

	r := c.verifyDigest(ctx, req.Image)
	if r.Outcome != verify.Verified || !req.AllPlatforms {
		return r
	}
	return c.verifyPlatforms(ctx, req.Image, r)
}

// call is one Verify call: the authorities (loaded once), what they must
// satisfy, and the registry options every fetch of the call shares.
type call struct {
	authorities    []check // as loaded: nothing checked yet
	threshold      int
	predicateTypes []string // required, each once
	puller         *remote.Puller
	opts           []ociremote.Option
}

// verifyDigest verifies the signatures of one digest, then, if they verify, its
// attestations.
func (c *call) verifyDigest(ctx context.Context, d name.Digest) verify.Result {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil { // name.Digest has already validated it.
		return verify.Result{Outcome: verify.Mismatch, Detail: fmt.Sprintf("image digest %q: %v", d.DigestStr(), err)}
	}
	sigs, found, err := c.fetch(ctx, d, &signatures)
	if err != nil {
		return registryResult(d, signatures.what(d), err)
	}
	if found == 0 {
		return verify.Result{Outcome: verify.Unsigned, Detail: noneFound(&signatures, c.authorities, c.threshold)}
	}
	res, _ := c.decide(ctx, &signatures, sigs, found, h)
	if res.Outcome != verify.Verified || len(c.predicateTypes) == 0 {
		return res
	}

	atts, found, err := c.fetch(ctx, d, &attestations)
	if err != nil {
		return registryResult(d, attestations.what(d), err)
	}
	var missing []string
	for _, pt := range c.predicateTypes {
		k := attestationsOf(pt)
		if found == 0 {
			missing = append(missing, fmt.Sprintf("attestation %s: %s", pt, noneFound(k, c.authorities, c.threshold)))
			continue
		}
		if r, ok := c.decide(ctx, k, atts, found, h); !ok {
			missing = append(missing, fmt.Sprintf("attestation %s: %s", pt, r.Detail))
		}
	}
	if len(missing) > 0 {
		return verify.Result{Outcome: verify.AttestationMissing, Detail: strings.Join(missing, "; "), Satisfied: res.Satisfied}
	}
	return res
}

// decide checks every fetched item of kind k against every authority and
// says whether enough distinct signers verified. found is the number of items
// the registry listed.
func (c *call) decide(ctx context.Context, k *kind, items []fetched, found int, h v1.Hash) (verify.Result, bool) {
	checks := make([]check, len(c.authorities))
	for i := range c.authorities {
		checks[i] = c.authorities[i].fresh(k)
		checks[i].run(ctx, items, h)
	}
	var satisfied []string
	for _, ch := range checks {
		if len(ch.signers) > 0 {
			satisfied = append(satisfied, ch.authority.Name)
		}
	}
	distinct := distinctSigners(checks)
	if distinct >= c.threshold {
		return verify.Result{Outcome: verify.Verified, Detail: "verified by " + labels(checks, true), Satisfied: satisfied}, true
	}
	return verify.Result{
		Outcome:   verify.Mismatch,
		Detail:    mismatchDetail(k, checks, c.threshold, distinct, len(items), found),
		Satisfied: satisfied,
	}, false
}

// fetched is one signature or attestation of the image: its content held in
// memory, or why it could not be read (a malformed layer; never a registry
// failure).
type fetched struct {
	sig oci.Signature
	err error
}

// fetch reads the items of kind k of img: a GET of k's tag's manifest, then
// the first k.max blobs in parallel. found is the number of items the manifest
// lists. A missing tag means no items. A registry failure is returned as err.
func (c *call) fetch(ctx context.Context, img name.Digest, k *kind) (items []fetched, found int, err error) {
	tag, err := k.tag(img, c.opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("%s tag of %s: %w", k.one, img, err)
	}
	// Signatures answers an empty list when the tag does not exist (404); it
	// reads attestations as well, which are stored the same way.
	list, err := ociremote.Signatures(tag, c.opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %s %s: %w", k.many, tag, err)
	}
	m, err := list.Manifest() // already fetched by Signatures: no request
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %s %s: %w", k.many, tag, err)
	}
	if m == nil || len(m.Layers) == 0 {
		return nil, 0, nil
	}
	found = len(m.Layers)
	if found > cosignMaxLayers {
		// cosign's Get refuses the whole list: there is nothing to check.
		return nil, found, nil
	}
	all, err := list.Get() // lazy layers: no request yet
	if err != nil {
		return nil, found, fmt.Errorf("fetch %s %s: %w", k.many, tag, err)
	}
	all = all[:min(len(all), k.max)]

	items = make([]fetched, len(all))
	errs := make([]error, len(all))
	sem := make(chan struct{}, fetchParallelism)
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			items[i], errs[i] = k.load(s)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, found, fmt.Errorf("fetch %s %s: %w", k.many, tag, err)
		}
	}
	return items, found, nil
}

// load downloads one layer of kind k and copies it into memory, so that every
// authority checks the same bytes without another request. A registry failure
// is returned as error; a malformed layer is recorded in fetched.err.
func (k *kind) load(s oci.Signature) (fetched, error) {
	size, err := s.Size()
	if err != nil {
		return fetched{err: fmt.Errorf("malformed %s layer: %w", k.one, err)}, nil
	}
	if size > k.maxPayload {
		return fetched{err: fmt.Errorf("%s payload of %d bytes exceeds the limit of %d", k.one, size, k.maxPayload)}, nil
	}
	// Copy reads the payload (one GET of the blob) and the annotations.
	c, err := static.Copy(s)
	if err != nil {
		if registry.IsRegistryError(err) {
			return fetched{}, err
		}
		return fetched{err: fmt.Errorf("malformed %s layer: %w", k.one, err)}, nil
	}
	return fetched{sig: c}, nil
}
