package registry

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Pure decisions of the guard: nothing in this file opens a socket.

func TestBearerRealms(t *testing.T) {
	tests := map[string]struct {
		headers []string
		want    []string
	}{
		"bearer":               {headers: []string{`Bearer realm="https://auth.example.com/token",service="registry"`}, want: []string{"https://auth.example.com/token"}},
		"realm not first":      {headers: []string{`Bearer service="registry", realm="https://auth.example.com/token"`}, want: []string{"https://auth.example.com/token"}},
		"case and spaces":      {headers: []string{`BEARER Realm = "https://auth.example.com/token"`}, want: []string{"https://auth.example.com/token"}},
		"unquoted":             {headers: []string{`Bearer realm=https://auth.example.com/token,service=registry`}, want: []string{"https://auth.example.com/token"}},
		"basic is a label":     {headers: []string{`Basic realm="https://169.254.169.254/"`}},
		"basic, then bearer":   {headers: []string{`Basic realm="Registry", Bearer realm="https://auth.example.com/token"`}, want: []string{"https://auth.example.com/token"}},
		"two headers":          {headers: []string{`Bearer realm="https://a.example.com/"`, `Bearer realm="https://b.example.com/"`}, want: []string{"https://a.example.com/", "https://b.example.com/"}},
		"other parameter name": {headers: []string{`Bearer xrealm="https://a.example.com/"`}},
		"none":                 {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.headers {
				h.Add("WWW-Authenticate", v)
			}
			if diff := cmp.Diff(tc.want, bearerRealms(h)); diff != "" {
				t.Errorf("bearerRealms(%q) (-want +got):\n%s", tc.headers, diff)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	g := &guard{
		allowed:  map[string]string{"ghcr.io:443": "ghcr.io", "registry.local:5000": "registry.local:5000", "plain.local:80": "plain.local:80"},
		insecure: map[string]bool{"registry.local:5000": true, "plain.local:80": true},
	}
	type result struct {
		Label string
		Err   *NotAllowedError
	}
	tests := map[string]struct {
		url  string
		want result
	}{
		"https":                      {url: "https://ghcr.io/v2/", want: result{Label: "ghcr.io"}},
		"https, explicit port":       {url: "https://GHCR.io:443/v2/", want: result{Label: "ghcr.io"}},
		"plain HTTP, secure":         {url: "http://ghcr.io:443/v2/", want: result{Label: "ghcr.io", Err: &NotAllowedError{Host: "ghcr.io:443", Reason: "plain HTTP not allowed for this registry"}}},
		"plain HTTP, insecure":       {url: "http://registry.local:5000/v2/", want: result{Label: "registry.local:5000"}},
		"plain HTTP, default port":   {url: "http://plain.local/v2/", want: result{Label: "plain.local:80"}},
		"https to port 80 not meant": {url: "https://plain.local/v2/", want: result{Label: "other", Err: &NotAllowedError{Host: "plain.local", Reason: reasonNotListed}}},
		"other scheme":               {url: "ftp://ghcr.io:443/", want: result{Label: "ghcr.io", Err: &NotAllowedError{Host: "ghcr.io:443", Reason: `scheme "ftp" not allowed`}}},
		"not listed":                 {url: "https://169.254.169.254/latest/meta-data/", want: result{Label: "other", Err: &NotAllowedError{Host: "169.254.169.254", Reason: reasonNotListed}}},
		"userinfo not echoed":        {url: "https://alice:pw@evil.example/", want: result{Label: "other", Err: &NotAllowedError{Host: "evil.example", Reason: reasonNotListed}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			var got result
			got.Label, err = g.checkURL(u)
			if err != nil && !errors.As(err, &got.Err) {
				t.Fatalf("checkURL(%s) = %v, want a *NotAllowedError or nil", tc.url, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("checkURL(%s) (-want +got):\n%s", tc.url, diff)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	g := &guard{maxBodies: 4 << 20, maxBlobs: 1 << 20}
	get := func(rawURL string) *http.Request {
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	redirected := get("https://storage.example.com/bucket/object?signature=x")
	redirected.Response = &http.Response{Request: get("https://ghcr.io/v2/team/app/blobs/sha256:abc")}

	type limit struct {
		Bytes int64
		What  string
	}
	tests := map[string]struct {
		req  *http.Request
		want limit
	}{
		"manifest":               {req: get("https://ghcr.io/v2/team/app/manifests/v1"), want: limit{4 << 20, "manifest"}},
		"repository 'manifests'": {req: get("https://ghcr.io/v2/manifests/app/blobs/sha256:abc"), want: limit{1 << 20, "blob"}},
		"blob":                   {req: get("https://ghcr.io/v2/team/app/blobs/sha256:abc"), want: limit{1 << 20, "blob"}},
		"blob after redirect":    {req: redirected, want: limit{1 << 20, "blob"}},
		"upload is not a blob":   {req: get("https://ghcr.io/v2/team/app/blobs/uploads/"), want: limit{4 << 20, "registry response"}},
		"ping":                   {req: get("https://ghcr.io/v2/"), want: limit{4 << 20, "registry response"}},
		"token":                  {req: get("https://ghcr.io/token?scope=x"), want: limit{4 << 20, "registry response"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got limit
			got.Bytes, got.What = g.bodyLimit(tc.req)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("bodyLimit(%s) (-want +got):\n%s", tc.req.URL, diff)
			}
		})
	}
}

func TestGuardedBody(t *testing.T) {
	tests := map[string]struct {
		size, limit int64
		wantErr     string
	}{
		"under":     {size: 99, limit: 100},
		"at":        {size: 100, limit: 100},
		"over":      {size: 101, limit: 100, wantErr: "manifest exceeds the limit of 100 bytes"},
		"far over":  {size: 1 << 20, limit: 100, wantErr: "manifest exceeds the limit of 100 bytes"},
		"unbounded": {size: 1 << 20, limit: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cancelled := false
			b := &guardedBody{
				rc:     io.NopCloser(bytes.NewReader(make([]byte, tc.size))),
				cancel: func() { cancelled = true },
				left:   tc.limit, limit: tc.limit, what: "manifest",
			}
			got, err := io.ReadAll(b)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ReadAll: %v", err)
			case tc.wantErr == "" && int64(len(got)) != tc.size:
				t.Errorf("read %d bytes, want %d", len(got), tc.size)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("ReadAll error = %v, want %q", err, tc.wantErr)
			case tc.wantErr != "" && int64(len(got)) > tc.limit:
				t.Errorf("read %d bytes past the limit of %d", len(got), tc.limit)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if !cancelled {
				t.Error("Close did not release the request's context")
			}
		})
	}
}
