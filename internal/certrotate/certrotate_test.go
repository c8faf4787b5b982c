package certrotate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCABundlePatchSetsOnlyWhatDiffers(t *testing.T) {
	bundle := []byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
	tests := map[string]struct {
		current [][]byte
		want    string
	}{
		"all set": {current: [][]byte{bundle, bundle}, want: ""},
		"none":    {current: nil, want: ""},
		"first empty": {current: [][]byte{nil, bundle},
			want: `[{"op":"replace","path":"/metadata/resourceVersion","value":"42"},{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBPT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="}]`},
		"second stale": {current: [][]byte{bundle, []byte("old")},
			want: `[{"op":"replace","path":"/metadata/resourceVersion","value":"42"},{"op":"add","path":"/webhooks/1/clientConfig/caBundle","value":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBPT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="}]`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, string(caBundlePatch("42", tc.current, bundle))); diff != "" {
				t.Errorf("patch (-want +got):\n%s", diff)
			}
		})
	}
}
