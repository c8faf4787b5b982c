package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
)

func TestMirrorServesTheRegistrysRepositories(t *testing.T) {
	mirror := newTestRegistry(t, nil)
	want := mirror.push(t, "team/app:v1", authn.Anonymous)
	// upstream.test is never contacted, nor resolved: only the mirror is allowed.
	c := newTestClient(t, mirror.srv, Options{Allow: []string{mirror.host}, AllowAddresses: loopback,
		Mirrors: map[string]string{"upstream.test": mirror.host}})
	got, err := c.Resolve(t.Context(), mustTag(t, "upstream.test/team/app:v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("upstream.test/team/app:v1@"+want.String(), got.String()); diff != "" {
		t.Errorf("Resolve (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"HEAD /v2/team/app/manifests/v1"}, mirror.takeManifests()); diff != "" {
		t.Errorf("mirror's manifest requests (-want +got):\n%s", diff)
	}
	if _, err := New(Options{Allow: []string{"ghcr.io"}, Mirrors: map[string]string{"docker.io": "mirror.test"}}); err == nil {
		t.Error("a mirror outside the allow-list was accepted")
	}
}
