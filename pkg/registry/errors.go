package registry

import "fmt"

// NotAllowedError reports a destination the egress guard refused: a registry not
// on the allow-list, or an address (loopback, link-local, private, …) that is not
// explicitly allowed. Nothing was sent to it.
type NotAllowedError struct {
	// Host is the registry host (host or host:port) or the dialled address.
	Host string
	// Reason says which rule refused it, e.g. "not on the registry allow-list".
	Reason string
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("registry not allowed: %s: %s", e.Host, e.Reason)
}

// reasonPlainHTTP refuses plain HTTP to a registry not listed as insecure.
const reasonPlainHTTP = "plain HTTP not allowed for this registry"
