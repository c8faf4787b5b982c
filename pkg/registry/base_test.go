package registry

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-dev/bulwark/pkg/verify"
)

func annotated(t *testing.T, ann map[string]string) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ann == nil {
		return img
	}
	return mutate.Annotations(img, ann).(v1.Image)
}

func TestBaseReadsTheDeclaredBase(t *testing.T) {
	reg := newTestRegistry(t, nil)
	c := newTestClient(t, reg.srv, Options{Allow: []string{reg.host}, AllowAddresses: loopback})
	digest := "sha256:" + strings.Repeat("b", 64)
	base := map[string]string{verify.AnnotationBaseName: "gcr.io/distroless/static:nonroot", verify.AnnotationBaseDigest: digest}
	write := func(t *testing.T, img remote.Taggable) name.Digest {
		t.Helper()
		var h v1.Hash
		var err error
		switch x := img.(type) {
		case v1.Image:
			h, err = x.Digest()
		case v1.ImageIndex:
			h, err = x.Digest()
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := name.NewDigest(reg.host + "/team/app@" + h.String())
		if err != nil {
			t.Fatal(err)
		}
		opts := []remote.Option{remote.WithContext(t.Context()), remote.WithTransport(reg.srv.Client().Transport)}
		switch x := img.(type) {
		case v1.Image:
			err = remote.Write(d, x, opts...)
		case v1.ImageIndex:
			err = remote.WriteIndex(d, x, opts...)
		}
		if err != nil {
			t.Fatal(err)
		}
		reg.takeManifests()
		return d
	}
	index := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: annotated(t, base), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: annotated(t, nil), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	for name, tc := range map[string]struct {
		img       remote.Taggable
		want      verify.Base
		manifests int
	}{
		"image declaring its base": {img: annotated(t, base), manifests: 1,
			want: verify.Base{Outcome: verify.Verified, Declared: []verify.BaseRef{{Name: "gcr.io/distroless/static:nonroot", Digest: digest}}}},
		"image declaring none": {img: annotated(t, nil), manifests: 1,
			want: verify.Base{Outcome: verify.Verified, Undeclared: []string{"image"}}},
		"index: each platform manifest": {img: index, manifests: 3,
			want: verify.Base{Outcome: verify.Verified, Declared: []verify.BaseRef{{Platform: "linux/amd64", Name: "gcr.io/distroless/static:nonroot", Digest: digest}}, Undeclared: []string{"linux/arm64"}}},
		"index declaring the base itself": {img: mutate.Annotations(index, base).(v1.ImageIndex), manifests: 1,
			want: verify.Base{Outcome: verify.Verified, Declared: []verify.BaseRef{{Name: "gcr.io/distroless/static:nonroot", Digest: digest}}}},
	} {
		t.Run(name, func(t *testing.T) {
			d := write(t, tc.img)
			got := c.Base(t.Context(), d, nil)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Base (-want +got):\n%s", diff)
			}
			if n := len(reg.takeManifests()); n != tc.manifests {
				t.Errorf("%d manifest requests, want %d", n, tc.manifests)
			}
		})
	}
	t.Run("registry not allowed", func(t *testing.T) {
		d, _ := name.NewDigest("127.0.0.2:5000/team/app@" + digest)
		got := c.Base(t.Context(), d, nil)
		if got.Outcome != verify.NotAllowed || !strings.Contains(got.Detail, "registry not allowed") {
			t.Errorf("Base = %+v, want NotAllowed", got)
		}
	})
}
