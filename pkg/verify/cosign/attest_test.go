package cosign_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-dev/bulwark/pkg/verify"
	bwcosign "github.com/bulwark-dev/bulwark/pkg/verify/cosign"
	"github.com/bulwark-dev/bulwark/tests/oci"
)

// Predicates as a build system and an SBOM generator write them.
var (
	slsaPredicate = []byte(`{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{"ref":"refs/heads/main"}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}`)
	spdxPredicate = []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","packages":[]}`)
)

// TestVerifyAttestations attests images in an in-process registry the way
// `cosign attest` does and checks the Result a user gets when a trust rule
// requires attestations.
func TestVerifyAttestations(t *testing.T) {
	const slsa, spdx = oci.SLSAProvenanceV1, oci.SPDXDocument
	reg := oci.NewRegistry(t)
	k1, k2, other := oci.NewKey(t), oci.NewKey(t), oci.NewKey(t)
	// signed returns a new image signed by keys.
	signed := func(keys ...*oci.Key) name.Digest {
		d := push(t, reg, "app")
		for _, k := range keys {
			reg.Sign(t, d, k)
		}
		return d
	}

	attested := signed(k1)
	reg.Attest(t, attested, k1, slsa, slsaPredicate)
	notAttested := signed(k1)
	attestedByOther := signed(k1)
	reg.Attest(t, attestedByOther, other, slsa, slsaPredicate)
	otherType := signed(k1)
	reg.Attest(t, otherType, k1, spdx, spdxPredicate)
	// A valid attestation of `attested` copied onto another image's attestation tag.
	copied := signed(k1)
	reg.AttachAttestation(t, copied, k1.Attestation(t, attested, slsa, slsaPredicate))
	bothTypes := signed(k1)
	reg.Attest(t, bothTypes, k1, slsa, slsaPredicate)
	reg.Attest(t, bothTypes, k1, spdx, spdxPredicate)
	twoSigners := signed(k1, k2)
	reg.Attest(t, twoSigners, k1, slsa, slsaPredicate)
	twoAttesters := signed(k1, k2)
	reg.Attest(t, twoAttesters, k1, slsa, slsaPredicate)
	reg.Attest(t, twoAttesters, k2, slsa, slsaPredicate)
	unsignedButAttested := signed()
	reg.Attest(t, unsignedButAttested, k1, slsa, slsaPredicate)
	// The trusted attestation comes after MaxAttestations others.
	many := signed(k1)
	for range bwcosign.MaxAttestations + 1 {
		reg.Attest(t, many, other, slsa, slsaPredicate)
	}
	reg.Attest(t, many, k1, slsa, slsaPredicate)
	// A predicate of 1 MiB makes an envelope beyond the limit.
	huge := signed(k1)
	reg.Attest(t, huge, k1, slsa, []byte(`{"padding":"`+strings.Repeat("x", 1<<20)+`"}`))
	hugeSize, err := reg.Attestations(t, huge)[0].Size()
	if err != nil {
		t.Fatal(err)
	}

	const issuer, subject = "https://issuer.example", "release@example.com"
	ca := oci.NewFulcio(t)
	keyless := push(t, reg, "keyless")
	reg.SignKeyless(t, keyless, ca, issuer, subject)
	reg.AttestKeyless(t, keyless, ca, issuer, subject, slsa, slsaPredicate)
	keylessKeyAttested := push(t, reg, "keyless")
	reg.SignKeyless(t, keylessKeyAttested, ca, issuer, subject)
	reg.Attest(t, keylessKeyAttested, k1, slsa, slsaPredicate)
	keylessAuth := verify.Authority{Name: "ci", Keyless: &verify.Keyless{
		Issuer: issuer, Subject: subject, TrustedRoot: writeFile(t, t.TempDir(), "fulcio.pem", ca.RootPEM),
	}}

	v := newVerifier(t, bwcosign.Options{RemoteOptions: remoteOptions(t, reg)})
	release := []verify.Authority{keyAuth("release", k1)}
	twoKeys := []verify.Authority{keyAuth("k1", k1), keyAuth("k2", k2)}
	tests := map[string]struct {
		image        name.Digest
		authorities  []verify.Authority
		threshold    int
		attestations []string
		want         verify.Result
	}{
		"required and present": {
			image: attested, authorities: release, attestations: []string{slsa},
			want: result(verify.Verified, `verified by key "release"`, "release"),
		},
		"not required, absent": {
			image: notAttested, authorities: release,
			want: result(verify.Verified, `verified by key "release"`, "release"),
		},
		"required, absent": {
			image: notAttested, authorities: release, attestations: []string{slsa},
			want: result(verify.AttestationMissing, `attestation `+slsa+`: no attestations found; expected an attestation by key "release"`, "release"),
		},
		"made by another key": {
			image: attestedByOther, authorities: release, attestations: []string{slsa},
			want: result(verify.AttestationMissing, `attestation `+slsa+`: 1 attestation found, none verifies; key "release": invalid signature`, "release"),
		},
		"of another predicate type": {
			image: otherType, authorities: release, attestations: []string{slsa},
			want: result(verify.AttestationMissing, `attestation `+slsa+`: 1 attestation found, none verifies; key "release": predicate type `+spdx+` found, `+slsa+` required`, "release"),
		},
		"copied from another digest": {
			image: copied, authorities: release, attestations: []string{slsa},
			want: result(verify.AttestationMissing, `attestation `+slsa+`: 1 attestation found, none verifies; key "release": attestation was made for another digest `+attested.DigestStr(), "release"),
		},
		"two predicate types, both present": {
			image: bothTypes, authorities: release, attestations: []string{slsa, spdx},
			want: result(verify.Verified, `verified by key "release"`, "release"),
		},
		"two predicate types, one present": {
			image: attested, authorities: release, attestations: []string{spdx, slsa},
			want: result(verify.AttestationMissing, `attestation `+spdx+`: 1 attestation found, none verifies; key "release": predicate type `+slsa+` found, `+spdx+` required`, "release"),
		},
		"two predicate types, none present": {
			image: notAttested, authorities: release, attestations: []string{slsa, spdx},
			want: result(verify.AttestationMissing, `attestation `+slsa+`: no attestations found; expected an attestation by key "release"; `+
				`attestation `+spdx+`: no attestations found; expected an attestation by key "release"`, "release"),
		},
		"threshold 2, attested by one key": {
			image: twoSigners, authorities: twoKeys, threshold: 2, attestations: []string{slsa},
			want: result(verify.AttestationMissing, `attestation `+slsa+`: 1 attestation found; 2 of 2 authorities required, 1 verified (key "k1"); key "k2": invalid signature`, "k1", "k2"),
		},
		"threshold 2, attested by both keys": {
			image: twoAttesters, authorities: twoKeys, threshold: 2, attestations: []string{slsa},
			want: result(verify.Verified, `verified by key "k1", key "k2"`, "k1", "k2"),
		},
		"signature missing: attestations not looked at": {
			image: unsignedButAttested, authorities: release, attestations: []string{slsa},
			want: result(verify.Unsigned, `no signatures found; expected a signature by key "release"`),
		},
		"trusted attestation beyond the bound": {
			image: many, authorities: release, attestations: []string{slsa},
			want: result(verify.AttestationMissing, fmt.Sprintf(`attestation %s: %d attestations found, none verifies; key "release": invalid signature; only the first %d of %d attestations were checked`,
				slsa, bwcosign.MaxAttestations+2, bwcosign.MaxAttestations, bwcosign.MaxAttestations+2), "release"),
		},
		"attestation too big": {
			image: huge, authorities: release, attestations: []string{slsa},
			want: result(verify.AttestationMissing, fmt.Sprintf(`attestation %s: 1 attestation found, none verifies; key "release": attestation payload of %d bytes exceeds the limit of %d`,
				slsa, hugeSize, 1<<20), "release"),
		},
		"keyless": {
			image: keyless, authorities: []verify.Authority{keylessAuth}, attestations: []string{slsa},
			want: result(verify.Verified, `verified by identity "ci"`, "ci"),
		},
		"keyless authority, attestation made with a key": {
			image: keylessKeyAttested, authorities: []verify.Authority{keylessAuth}, attestations: []string{slsa},
			want: result(verify.AttestationMissing, `attestation `+slsa+`: 1 attestation found, none verifies; identity "ci": attestation carries no certificate (it was made with a key, not keyless)`, "ci"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := v.Verify(t.Context(), verify.Request{Image: tc.image, Authorities: tc.authorities, Threshold: tc.threshold, Attestations: tc.attestations})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVerifyAllPlatforms verifies multi-platform images: with AllPlatforms,
// every platform manifest of an index must verify as the index does.
func TestVerifyAllPlatforms(t *testing.T) {
	const slsa = oci.SLSAProvenanceV1
	reg := oci.NewRegistry(t)
	k1, other := oci.NewKey(t), oci.NewKey(t)
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	// index pushes an index of amd64 and arm64 images, and signs the index and
	// the images with the keys given for each (none: unsigned).
	index := func(indexKey, amd64Key, arm64Key *oci.Key) (name.Digest, []name.Digest) {
		d, images := reg.PushIndex(t, "multi", amd64, arm64)
		digests := append([]name.Digest{d}, images...)
		for i, k := range []*oci.Key{indexKey, amd64Key, arm64Key} {
			if k != nil {
				reg.Sign(t, digests[i], k)
			}
		}
		return d, images
	}

	allSigned, _ := index(k1, k1, k1)
	armUnsigned, armUnsignedImages := index(k1, k1, nil)
	amdByOther, amdByOtherImages := index(k1, other, k1)
	indexUnsigned, _ := index(nil, k1, k1)
	attested, attestedImages := index(k1, k1, k1)
	reg.Attest(t, attested, k1, slsa, slsaPredicate)
	reg.Attest(t, attestedImages[0], k1, slsa, slsaPredicate)
	image := push(t, reg, "multi")
	reg.Sign(t, image, k1)
	var platforms []v1.Platform
	for i := range bwcosign.MaxPlatforms + 1 {
		platforms = append(platforms, v1.Platform{OS: "linux", Architecture: fmt.Sprintf("arch%d", i)})
	}
	tooMany, _ := reg.PushIndex(t, "multi", platforms...)
	reg.Sign(t, tooMany, k1)

	v := newVerifier(t, bwcosign.Options{RemoteOptions: remoteOptions(t, reg)})
	release := []verify.Authority{keyAuth("release", k1)}
	tests := map[string]struct {
		image        name.Digest
		allPlatforms bool
		attestations []string
		want         verify.Result
	}{
		"index and platforms signed": {
			image: allSigned, allPlatforms: true,
			want: result(verify.Verified, `verified by key "release"`, "release"),
		},
		"one platform unsigned": {
			image: armUnsigned, allPlatforms: true,
			want: result(verify.Mismatch, `platform linux/arm64/v8 (`+armUnsignedImages[1].DigestStr()+`): no signatures found; expected a signature by key "release"`, "release"),
		},
		"one platform unsigned, index only": {
			image: armUnsigned,
			want:  result(verify.Verified, `verified by key "release"`, "release"),
		},
		"one platform signed by another key": {
			image: amdByOther, allPlatforms: true,
			want: result(verify.Mismatch, `platform linux/amd64 (`+amdByOtherImages[0].DigestStr()+`): 1 signature found, none verifies; key "release": invalid signature`, "release"),
		},
		"index unsigned": {
			image: indexUnsigned, allPlatforms: true,
			want: result(verify.Unsigned, `no signatures found; expected a signature by key "release"`),
		},
		"one platform without the attestation": {
			image: attested, allPlatforms: true, attestations: []string{slsa},
			want: result(verify.AttestationMissing, `platform linux/arm64/v8 (`+attestedImages[1].DigestStr()+`): attestation `+slsa+`: no attestations found; expected an attestation by key "release"`, "release"),
		},
		"not an index": {
			image: image, allPlatforms: true,
			want: result(verify.Verified, `verified by key "release"`, "release"),
		},
		"more platforms than verified": {
			image: tooMany, allPlatforms: true,
			want: result(verify.Mismatch, fmt.Sprintf(`index %s has %d platform manifests; at most %d are verified`,
				tooMany.DigestStr(), bwcosign.MaxPlatforms+1, bwcosign.MaxPlatforms), "release"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := v.Verify(t.Context(), verify.Request{Image: tc.image, Authorities: release, Attestations: tc.attestations, AllPlatforms: tc.allPlatforms})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}
