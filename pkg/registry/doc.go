// Package registry owns bulwark's access to OCI registries: parsing references,
// resolving a tag to a digest, keychains from pull secrets, and the egress guard that
// decides, before any I/O and again at dial time, which registries bulwark may talk
// to. Everything that reaches a registry goes through a Client.
//
// It must not decide policy (what a missing digest or an unreachable registry means
// for admission belongs to pkg/policy), must not let any request bypass the guard
// (no other HTTP client, no proxy from the environment, no retries), and must never
// put credentials in errors, logs or metrics.
package registry
