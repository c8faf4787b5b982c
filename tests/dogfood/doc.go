// Package dogfood holds the dogfood test: bulwark's scanner, on a database built
// from every record of the Go vulnerability database (golang.org/x/vulndb, pinned
// in tests/vulndb), scans bulwark's own release binaries, built as `make release`
// builds them, and bulwark's policy judges the findings with policy.yaml: each
// must be accepted by an ignore rule with a reason and an expiry. Positive
// controls first prove that the same pipeline finds real vulnerabilities in the
// standard library and in a module. See docs/dogfood.md.
//
// It has no code outside its test: it must not be imported.
package dogfood
