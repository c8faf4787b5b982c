package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bulwark-dev/bulwark/internal/wire"
	"github.com/bulwark-dev/bulwark/pkg/admission"
	"github.com/bulwark-dev/bulwark/pkg/check"
	"github.com/bulwark-dev/bulwark/pkg/policy"
	"github.com/bulwark-dev/bulwark/pkg/registry"
	"github.com/bulwark-dev/bulwark/pkg/scan"
	"github.com/bulwark-dev/bulwark/pkg/scan/grype"
	"github.com/bulwark-dev/bulwark/pkg/verify"
	"github.com/bulwark-dev/bulwark/pkg/verify/cosign"
)

// onlineOptions say which checks that need a registry or a database run.
type onlineOptions struct {
	registry bool   // contact registries: signature, base-image, tag resolution
	db       string // scan with the grype database in this directory
	caFile   string
}

// online prepares the checks that need the network or a database, on a copy of
// p: those not enabled by the flags are switched off with a note on stderr, so
// that offline runs judge what they can instead of failing closed on the rest.
// The returned closer releases the database.
func online(p *policy.Policy, o onlineOptions, stderr io.Writer) (*policy.Policy, check.Options, func(), error) {
	q := *p
	var co check.Options
	closer := func() {}
	if !o.registry {
		for _, c := range []struct {
			on   *bool
			name string
		}{{&q.Checks.Signature.Enabled, "signature"}, {&q.Checks.BaseImage.Enabled, "base-image"}} {
			if *c.on {
				*c.on = false
				fmt.Fprintf(stderr, "bulwark: the %s check is skipped: it needs --registry\n", c.name)
			}
		}
	}
	if o.db == "" && q.Checks.Vulnerabilities.Enabled {
		q.Checks.Vulnerabilities.Enabled = false
		fmt.Fprintln(stderr, "bulwark: the vulnerabilities check is skipped: it needs --db")
	}
	if !o.registry && o.db == "" {
		return &q, co, closer, nil
	}
	roots, err := wire.RegistryRoots(o.caFile)
	if err != nil {
		return nil, co, closer, fmt.Errorf("--registry-ca-file: %w", err)
	}
	rc, err := registry.New(wire.RegistryOptions(p, roots, nil))
	if err != nil {
		return nil, co, closer, err
	}
	co.Keychains = dockerKeychain{}
	if o.registry {
		v, err := cosign.New(cosign.Options{RemoteOptions: rc.RemoteOptionsFor})
		if err != nil {
			return nil, co, closer, err
		}
		co.Verifier = verify.NewCache(v, verify.CacheOptions{TTL: time.Hour})
		co.Inspector = verify.NewBaseCache(rc, 0, nil)
		co.Resolver = rc
	}
	if o.db != "" {
		db, err := grype.OpenDB(o.db, grype.DBOptions{})
		if err != nil {
			return nil, co, closer, fmt.Errorf("--db: %w", err)
		}
		sc, err := grype.New(grype.Options{DB: db})
		if err != nil {
			db.Close()
			return nil, co, closer, err
		}
		co.Scans = &scanNow{scanner: sc, registry: rc, done: map[string]scan.State{}}
		closer = func() { db.Close() }
	}
	return &q, co, closer, nil
}

// dockerKeychain gives the credentials of the Docker config, whatever the pod.
type dockerKeychain struct{}

func (dockerKeychain) ForPod(context.Context, string, string, []string) (authn.Keychain, error) {
	return authn.DefaultKeychain, nil
}

// scanNow implements admission.Scans for the CLI: it scans each digest itself,
// once, and waits as long as the scan takes.
type scanNow struct {
	scanner  scan.Scanner
	registry *registry.Client
	mu       sync.Mutex
	done     map[string]scan.State
}

func (s *scanNow) Await(ctx context.Context, req admission.ScanRequest) scan.State {
	key := req.Image.DigestStr()
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.done[key]; ok {
		return st
	}
	var platforms []v1.Platform
	for _, p := range req.Platforms {
		if pl, err := v1.ParsePlatform(p); err == nil {
			platforms = append(platforms, *pl)
		}
	}
	// The CLI waits for the scan: the admission budget does not apply here.
	ctx = context.WithoutCancel(ctx)
	r, err := s.scanner.Scan(ctx, scan.Request{Image: req.Image, Platforms: platforms, Remote: s.registry.RemoteOptionsFor(ctx, req.Image, authn.DefaultKeychain)})
	st := scan.State{Phase: scan.PhaseComplete, Report: r}
	if err != nil {
		st = scan.State{Phase: scan.PhaseFailed, Reason: "ScanFailed", Message: err.Error()}
	}
	s.done[key] = st
	return st
}
