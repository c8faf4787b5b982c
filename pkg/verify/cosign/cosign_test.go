package cosign_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-dev/bulwark/pkg/verify"
	bwcosign "github.com/bulwark-dev/bulwark/pkg/verify/cosign"
	"github.com/bulwark-dev/bulwark/tests/oci"
)

// TestVerify signs images in an in-process registry the way `cosign sign` does
// and checks the Result a user gets for each kind of signature.
func TestVerify(t *testing.T) {
	reg := oci.NewRegistry(t)
	k1, k2, k3, other := oci.NewKey(t), oci.NewKey(t), oci.NewKey(t), oci.NewKey(t)

	unsigned := push(t, reg, "app")
	byK1 := push(t, reg, "app")
	reg.Sign(t, byK1, k1)
	byOther := push(t, reg, "app")
	reg.Sign(t, byOther, other)
	// A valid signature of byK1 copied onto another image's signature tag.
	copied := push(t, reg, "app")
	reg.Attach(t, copied, k1.Signature(t, byK1))
	byK1K2 := push(t, reg, "app")
	reg.Sign(t, byK1K2, k1)
	reg.Sign(t, byK1K2, k2)
	// The trusted signature comes after MaxSignatures others.
	many := push(t, reg, "app")
	for range bwcosign.MaxSignatures + 1 {
		reg.Sign(t, many, other)
	}
	reg.Sign(t, many, k1)

	const issuer, subject = "https://issuer.example", "release@example.com"
	ca, otherCA := oci.NewFulcio(t), oci.NewFulcio(t)
	keyless := push(t, reg, "keyless")
	reg.SignKeyless(t, keyless, ca, issuer, subject)
	keylessURI := push(t, reg, "keyless")
	reg.SignKeyless(t, keylessURI, ca, issuer, "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")
	keylessOtherCA := push(t, reg, "keyless")
	reg.SignKeyless(t, keylessOtherCA, otherCA, issuer, subject)
	// Signed two hours ago: the 10-minute certificate has long expired, but the
	// Rekor bundle proves the signature was made while it was valid.
	signedAt := time.Now().Add(-2 * time.Hour)
	rekor, otherRekor := oci.NewRekor(t), oci.NewRekor(t)
	logged, loggedElsewhere := push(t, reg, "keyless"), push(t, reg, "keyless")
	for d, log := range map[name.Digest]*oci.Rekor{logged: rekor, loggedElsewhere: otherRekor} {
		priv, chain := ca.IssueAt(t, issuer, subject, signedAt, 10*time.Minute)
		reg.Attach(t, d, log.Log(t, oci.Signature(t, d, priv, chain), signedAt.Add(time.Minute)))
	}

	dir := t.TempDir()
	rootOnly := writeFile(t, dir, "fulcio.pem", ca.RootPEM)
	rootAndIntermediate := writeFile(t, dir, "fulcio-chain.pem", ca.IntermediatePEM, ca.RootPEM)
	rootAndRekor := writeFile(t, dir, "fulcio-rekor.pem", ca.RootPEM, rekor.PublicPEM)
	keylessAuth := func(root, iss, sub string) verify.Authority {
		return verify.Authority{Name: "ci", Keyless: &verify.Keyless{Issuer: iss, Subject: sub, TrustedRoot: root}}
	}

	secrets := map[verify.SecretRef]string{{Name: "keys", Key: "release.pub"}: k1.PublicPEM}
	var reads atomic.Int32
	v := newVerifier(t, bwcosign.Options{
		RemoteOptions: remoteOptions(t, reg),
		SecretKey: func(_ context.Context, ref verify.SecretRef) ([]byte, error) {
			if p, ok := secrets[ref]; ok {
				return []byte(p), nil
			}
			return nil, errors.New("not found")
		},
		ReadFile: func(p string) ([]byte, error) {
			reads.Add(1)
			return os.ReadFile(p)
		},
	})

	tests := map[string]struct {
		image       name.Digest
		authorities []verify.Authority
		threshold   int
		want        verify.Result
	}{
		"unsigned": {
			image:       unsigned,
			authorities: []verify.Authority{keyAuth("release", k1)},
			want:        result(verify.Unsigned, `no signatures found; expected a signature by key "release"`),
		},
		"unsigned, threshold 2": {
			image:       unsigned,
			authorities: []verify.Authority{keyAuth("k1", k1), keyAuth("k2", k2), keyAuth("k3", k3)},
			threshold:   2,
			want:        result(verify.Unsigned, `no signatures found; expected signatures by 2 of key "k1", key "k2", key "k3"`),
		},
		"signed by the trusted key": {
			image:       byK1,
			authorities: []verify.Authority{keyAuth("release", k1)},
			want:        result(verify.Verified, `verified by key "release"`, "release"),
		},
		"signed by the trusted key, read from a Secret": {
			image: byK1,
			authorities: []verify.Authority{{
				Name: "release", Key: &verify.Key{SecretRef: &verify.SecretRef{Name: "keys", Key: "release.pub"}},
			}},
			want: result(verify.Verified, `verified by key "release"`, "release"),
		},
		"key Secret missing": {
			image: byK1,
			authorities: []verify.Authority{{
				Name: "release", Key: &verify.Key{SecretRef: &verify.SecretRef{Name: "keys", Key: "gone.pub"}},
			}},
			want: result(verify.Mismatch, `1 signature found, none verifies; key "release": read key "gone.pub" of Secret "keys": not found`),
		},
		"signed by another key": {
			image:       byOther,
			authorities: []verify.Authority{keyAuth("release", k1)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; key "release": invalid signature`),
		},
		"signature copied from another digest": {
			image:       copied,
			authorities: []verify.Authority{keyAuth("release", k1)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; key "release": signature was made for another digest `+byK1.DigestStr()),
		},
		"one of two authorities": {
			image:       byK1,
			authorities: []verify.Authority{keyAuth("k2", k2), keyAuth("k1", k1)},
			want:        result(verify.Verified, `verified by key "k1"`, "k1"),
		},
		"threshold 2 of 3, one signer": {
			image:       byK1,
			authorities: []verify.Authority{keyAuth("k1", k1), keyAuth("k2", k2), keyAuth("k3", k3)},
			threshold:   2,
			want:        result(verify.Mismatch, `1 signature found; 2 of 3 authorities required, 1 verified (key "k1"); key "k2": invalid signature; key "k3": invalid signature`, "k1"),
		},
		"threshold 2 of 3, two signers": {
			image:       byK1K2,
			authorities: []verify.Authority{keyAuth("k1", k1), keyAuth("k2", k2), keyAuth("k3", k3)},
			threshold:   2,
			want:        result(verify.Verified, `verified by key "k1", key "k2"`, "k1", "k2"),
		},
		"threshold 2, one key named twice": {
			image:       byK1K2,
			authorities: []verify.Authority{keyAuth("k1", k1), keyAuth("k1-again", k1)},
			threshold:   2,
			want:        result(verify.Mismatch, `2 signatures found; 2 of 2 authorities required, 1 verified (key "k1", key "k1-again") but by only 1 distinct signer`, "k1", "k1-again"),
		},
		"trusted signature beyond the bound": {
			image:       many,
			authorities: []verify.Authority{keyAuth("release", k1)},
			want: result(verify.Mismatch, fmt.Sprintf(`%d signatures found, none verifies; key "release": invalid signature; only the first %d of %d signatures were checked`,
				bwcosign.MaxSignatures+2, bwcosign.MaxSignatures, bwcosign.MaxSignatures+2)),
		},
		"malformed key": {
			image:       byK1,
			authorities: []verify.Authority{{Name: "release", Key: &verify.Key{PEM: "not a key"}}},
			want:        result(verify.Mismatch, `1 signature found, none verifies; key "release": parse public key: PEM decoding failed`),
		},
		"keyless, matching identity": {
			image:       keyless,
			authorities: []verify.Authority{keylessAuth(rootOnly, issuer, subject)},
			want:        result(verify.Verified, `verified by identity "ci"`, "ci"),
		},
		"keyless, intermediate in the trusted root": {
			image:       keyless,
			authorities: []verify.Authority{keylessAuth(rootAndIntermediate, issuer, subject)},
			want:        result(verify.Verified, `verified by identity "ci"`, "ci"),
		},
		"keyless, subject regexp": {
			image: keylessURI,
			authorities: []verify.Authority{{Name: "ci", Keyless: &verify.Keyless{
				IssuerRegExp:  `^https://issuer\.example$`,
				SubjectRegExp: `^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/heads/main$`,
				TrustedRoot:   rootOnly,
			}}},
			want: result(verify.Verified, `verified by identity "ci"`, "ci"),
		},
		"keyless, other subject": {
			image:       keyless,
			authorities: []verify.Authority{keylessAuth(rootOnly, issuer, "dev@example.com")},
			want:        result(verify.Mismatch, `1 signature found, none verifies; identity "ci": certificate identity issuer="https://issuer.example" subject="release@example.com" does not match issuer="https://issuer.example" subject="dev@example.com"`),
		},
		"keyless, other issuer": {
			image:       keyless,
			authorities: []verify.Authority{keylessAuth(rootOnly, "https://accounts.example", subject)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; identity "ci": certificate identity issuer="https://issuer.example" subject="release@example.com" does not match issuer="https://accounts.example" subject="release@example.com"`),
		},
		"keyless, subject regexp does not match": {
			image: keylessURI,
			authorities: []verify.Authority{{Name: "ci", Keyless: &verify.Keyless{
				Issuer:        issuer,
				SubjectRegExp: `^https://github\.com/acme/other/`,
				TrustedRoot:   rootOnly,
			}}},
			want: result(verify.Mismatch, `1 signature found, none verifies; identity "ci": certificate identity issuer="https://issuer.example" subject="https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main" does not match issuer="https://issuer.example" subject=~"^https://github\\.com/acme/other/"`),
		},
		"keyless, certificate from another CA": {
			image:       keylessOtherCA,
			authorities: []verify.Authority{keylessAuth(rootOnly, issuer, subject)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; identity "ci": certificate (issuer="https://issuer.example" subject="release@example.com") was not issued by the trusted root `+rootOnly),
		},
		"keyless authority, key signature": {
			image:       byK1,
			authorities: []verify.Authority{keylessAuth(rootOnly, issuer, subject)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; identity "ci": signature carries no certificate (it was made with a key, not keyless)`),
		},
		"keyless signature, key or identity": {
			image:       keyless,
			authorities: []verify.Authority{keyAuth("release", k1), keylessAuth(rootOnly, issuer, subject)},
			want:        result(verify.Verified, `verified by identity "ci"`, "ci"),
		},
		"keyless, expired certificate without Rekor keys": {
			image:       logged,
			authorities: []verify.Authority{keylessAuth(rootOnly, issuer, subject)},
			want: result(verify.Mismatch, `1 signature found, none verifies; identity "ci": certificate expired at `+signedAt.Add(10*time.Minute).UTC().Format(time.RFC3339)+
				`; the trusted root has no Rekor keys, so a keyless signature verifies only while its certificate is valid`),
		},
		"keyless, Rekor bundle verified offline": {
			image:       logged,
			authorities: []verify.Authority{keylessAuth(rootAndRekor, issuer, subject)},
			want:        result(verify.Verified, `verified by identity "ci"`, "ci"),
		},
		"keyless, Rekor keys but no bundle": {
			image:       keyless,
			authorities: []verify.Authority{keylessAuth(rootAndRekor, issuer, subject)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; identity "ci": signature carries no Rekor bundle; the trusted root has Rekor keys, so one is required`),
		},
		"keyless, bundle from another log": {
			image:       loggedElsewhere,
			authorities: []verify.Authority{keylessAuth(rootAndRekor, issuer, subject)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; identity "ci": rekor bundle does not verify: verifying bundle: rekor log public key not found for payload`),
		},
		"keyless, missing trusted root": {
			image:       keyless,
			authorities: []verify.Authority{keylessAuth(dir+"/absent.pem", issuer, subject)},
			want:        result(verify.Mismatch, `1 signature found, none verifies; identity "ci": read trusted root: open `+dir+`/absent.pem: no such file or directory`),
		},
	}
	t.Run("cases", func(t *testing.T) {
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				got := v.Verify(t.Context(), verify.Request{Image: tc.image, Authorities: tc.authorities, Threshold: tc.threshold})
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Verify (-want +got):\n%s", diff)
				}
			})
		}
	})
	// Three trusted-root files exist, each read once however many cases use
	// it; the absent one is retried by its one case.
	if got := reads.Load(); got != 4 {
		t.Errorf("ReadFile calls = %d, want 4", got)
	}
}

// result is the Result a user gets: the outcome, the detail as they read it,
// and the authorities satisfied.
func result(o verify.Outcome, detail string, satisfied ...string) verify.Result {
	return verify.Result{Outcome: o, Detail: detail, Satisfied: satisfied}
}

// keyAuth is an authority named n holding k's public key inline.
func keyAuth(n string, k *oci.Key) verify.Authority {
	return verify.Authority{Name: n, Key: &verify.Key{PEM: k.PublicPEM}}
}
