package e2e

import (
	"strings"
	"testing"

	"github.com/bulwark-dev/bulwark/internal/image"
	"github.com/bulwark-dev/bulwark/tests/release"
)

// ownBase is the name `make image` records for the non-root base it builds
// (hack/image without --push); the trust policy approves it as it approves
// distroless, which the Dockerfile uses.
const ownBase = "ghcr.io/bulwark-dev/bulwark-base"

// testOwnImage gates bulwark's own release: `make image` builds the webhook and
// scanner images without a Docker daemon; both run as non-root and name their
// base by digest; pushed to the registry, the signed webhook image is admitted
// through the API server under the trust policy (signature, base image, digest
// checks on), and the same build unsigned is denied.
func (te *trustEnv) testOwnImage(t *testing.T) {
	a := release.Build(t)
	baseDigest, err := a.Images["base"].Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, component := range []string{"webhook", "scanner"} {
		img := a.Images[component]
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if user := cf.Config.User; user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
			t.Errorf("%s image runs as %q, want a non-root user", component, user)
		}
		if ep := cf.Config.Entrypoint; len(ep) != 1 || ep[0] != "/usr/local/bin/"+component {
			t.Errorf("%s image entrypoint %v", component, ep)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Annotations[image.AnnotationBaseName]; !strings.HasPrefix(got, ownBase+":") {
			t.Errorf("%s image names its base %q, want %s:…", component, got, ownBase)
		}
		if got := m.Annotations[image.AnnotationBaseDigest]; got != baseDigest.String() {
			t.Errorf("%s image names base digest %q, want the base's %s", component, got, baseDigest)
		}
	}

	ns := trustNamespace(t)
	webhook := te.reg.Push(t, "bulwark/bulwark-webhook", "dev", a.Images["webhook"])
	te.reg.Sign(t, webhook, te.release)
	if _, err := createPod(t, ns, "bulwark-webhook", webhook.String()); err != nil {
		t.Fatalf("bulwark's own signed image was not admitted: %v", err)
	}
	scanner := te.reg.Push(t, "bulwark/bulwark-scanner", "dev", a.Images["scanner"])
	_, err = createPod(t, ns, "bulwark-scanner-unsigned", scanner.String())
	wantDenied(t, err, "image is not signed (check signature)", scanner.String())
}
