// Package cosign implements verify.Verifier with sigstore's cosign library.
//
// It fetches the cosign signatures of one image digest (the sha256-<hex>.sig tag
// of the image's repository) once per Verify call and checks every authority
// against them with cosign's own verification functions. It owns loading of keys
// and trusted roots, and the classification of what it found into a
// verify.Outcome with a detail a user can act on.
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
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

const (
	// MaxSignatures bounds the signatures looked at for one image: a registry must
	// not be able to make admission fetch and check an unbounded list. Signatures
	// beyond it are ignored and the detail says so.
	MaxSignatures = 32
	// SecretKeyRefresh is how long a key read from a Secret is used before it is
	// read again.
	SecretKeyRefresh = 60 * time.Second

	// maxPayloadBytes bounds one signature payload. A cosign payload is ≈250 bytes;
	// cosign's own limit (128 MiB) is far too generous for admission.
	maxPayloadBytes = 64 << 10
	// fetchParallelism bounds the concurrent signature blob downloads.
	fetchParallelism = 8
	// cosignMaxLayers is the most signature layers cosign's oci/remote lists.
	cosignMaxLayers = 1000
)

// Options configure a Verifier.
type Options struct {
	// RemoteOptions returns the go-containerregistry options for one call: the
	// guarded transport, the context and the keychain. Required.
	RemoteOptions func(ctx context.Context, kc authn.Keychain) []remote.Option
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
	remoteOptions func(ctx context.Context, kc authn.Keychain) []remote.Option
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
// max(1, req.Threshold) distinct authorities of req.Authorities. It fetches the
// signatures once (one manifest and at most MaxSignatures blobs) whatever the
// number of authorities.
func (v *Verifier) Verify(ctx context.Context, req verify.Request) verify.Result {
	threshold := max(1, req.Threshold)
	if len(req.Authorities) == 0 {
		// Fail closed: a rule naming no authority can be satisfied by nobody.
		return verify.Result{Outcome: verify.Mismatch, Detail: "no authorities to verify against"}
	}

	checks := make([]check, len(req.Authorities))
	for i, a := range req.Authorities {
		checks[i] = v.check(ctx, i, a)
	}

	sigs, found, err := v.fetch(ctx, req.Image, req.Keychain)
	if err != nil {
		return registryResult(req.Image, err)
	}
	if found == 0 {
		return verify.Result{
			Outcome: verify.Unsigned,
			Detail:  "no signatures found; expected " + expectation(checks, threshold),
		}
	}

	h, err := v1.NewHash(req.Image.DigestStr())
	if err != nil { // name.Digest has already validated it.
		return verify.Result{Outcome: verify.Mismatch, Detail: fmt.Sprintf("image digest %q: %v", req.Image.DigestStr(), err)}
	}
	for i := range checks {
		checks[i].run(ctx, sigs, h)
	}
	return decide(checks, threshold, len(sigs), found)
}

// fetched is one signature of the image: its content held in memory, or why it
// could not be read (a malformed layer; never a registry failure).
type fetched struct {
	sig oci.Signature
	err error
}

// fetch reads the signatures of img: a GET of the signature tag's manifest, then
// the first MaxSignatures signature blobs in parallel. found is the number of
// signatures the manifest lists. A missing signature tag means no signatures.
// A registry failure is returned as err.
func (v *Verifier) fetch(ctx context.Context, img name.Digest, kc authn.Keychain) (sigs []fetched, found int, err error) {
	opts := []ociremote.Option{ociremote.WithRemoteOptions(v.remoteOptions(ctx, kc)...)}
	tag, err := ociremote.SignatureTag(img, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("signature tag of %s: %w", img, err)
	}
	// Signatures answers an empty list when the tag does not exist (404).
	list, err := ociremote.Signatures(tag, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch signatures %s: %w", tag, err)
	}
	m, err := list.Manifest() // already fetched by Signatures: no request
	if err != nil {
		return nil, 0, fmt.Errorf("fetch signatures %s: %w", tag, err)
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
		return nil, found, fmt.Errorf("fetch signatures %s: %w", tag, err)
	}
	all = all[:min(len(all), MaxSignatures)]

	sigs = make([]fetched, len(all))
	errs := make([]error, len(all))
	sem := make(chan struct{}, fetchParallelism)
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sigs[i], errs[i] = load(s)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, found, fmt.Errorf("fetch signatures %s: %w", tag, err)
		}
	}
	return sigs, found, nil
}

// load downloads one signature layer and copies it into memory, so that every
// authority checks the same bytes without another request. A registry failure
// is returned as error; a malformed layer is recorded in fetched.err.
func load(s oci.Signature) (fetched, error) {
	size, err := s.Size()
	if err != nil {
		return fetched{err: fmt.Errorf("malformed signature layer: %w", err)}, nil
	}
	if size > maxPayloadBytes {
		return fetched{err: fmt.Errorf("signature payload of %d bytes exceeds the limit of %d", size, maxPayloadBytes)}, nil
	}
	// Copy reads the payload (one GET of the blob) and the annotations.
	c, err := static.Copy(s)
	if err != nil {
		if isRegistryError(err) {
			return fetched{}, err
		}
		return fetched{err: fmt.Errorf("malformed signature layer: %w", err)}, nil
	}
	return fetched{sig: c}, nil
}

// decide turns the per-authority results into a Result. n is the number of
// signatures checked, found the number the registry listed.
func decide(checks []check, threshold, n, found int) verify.Result {
	var satisfied []string
	for _, c := range checks {
		if len(c.signers) > 0 {
			satisfied = append(satisfied, c.authority.Name)
		}
	}
	distinct := distinctSigners(checks)
	if distinct >= threshold {
		return verify.Result{
			Outcome:   verify.Verified,
			Detail:    "verified by " + labels(checks, true),
			Satisfied: satisfied,
		}
	}
	return verify.Result{
		Outcome:   verify.Mismatch,
		Detail:    mismatchDetail(checks, threshold, distinct, n, found),
		Satisfied: satisfied,
	}
}
