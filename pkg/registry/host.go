package registry

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// reasonNotListed is the reason for a registry that is not on the allow-list.
const reasonNotListed = "not on the registry allow-list"

// CheckHost decides whether bulwark may contact the registry at hostport ("host" or
// "host:port"), given an allow-list in the same form. Both sides are normalised,
// then compared exactly: case is folded, a missing port means 443, IP addresses are
// written canonically, and "docker.io" means "index.docker.io". There are no
// wildcards; an entry of allow that does not parse never matches. A refusal is a
// *NotAllowedError.
func CheckHost(hostport string, allow []string) error {
	h, err := canonicalHost(hostport)
	if err != nil {
		return &NotAllowedError{Host: redactUserinfo(hostport), Reason: "not a host or host:port"}
	}
	for _, a := range allow {
		if c, err := canonicalHost(a); err == nil && c == h {
			return nil
		}
	}
	return &NotAllowedError{Host: hostport, Reason: reasonNotListed}
}

// canonicalHost normalises "host" or "host:port" to the "host:port" form the
// allow-list is keyed by.
func canonicalHost(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("empty host")
	case strings.Contains(s, "://"):
		return "", errors.New("want host or host:port, not a URL")
	case strings.Contains(s, "*"):
		return "", errors.New("wildcards are not supported")
	}
	u, err := url.Parse("//" + s)
	if err != nil || u.Host != s || u.User != nil || u.Hostname() == "" {
		return "", errors.New("want host or host:port")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch {
	case port == "" && strings.HasSuffix(s, ":"):
		return "", errors.New("empty port")
	case port == "":
		port = "443"
	default:
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return "", errors.New("port must be 1-65535")
		}
		port = strconv.FormatUint(n, 10)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", errors.New("zoned IPv6 addresses are not supported")
		}
		host = ip.String()
	} else if strings.HasPrefix(s, "[") {
		return "", errors.New("brackets hold an IPv6 address")
	} else if !validHostName(host) {
		return "", errors.New("not a valid host name")
	}
	if host == "docker.io" {
		host = "index.docker.io"
	}
	return net.JoinHostPort(host, port), nil
}

// validHostName reports whether h (lower case) is made of DNS labels.
func validHostName(h string) bool {
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				return false
			}
		}
	}
	return true
}

// hostLabel is how a canonical "host:port" is shown in metrics: without the
// default port.
func hostLabel(canonical string) string {
	return strings.TrimSuffix(canonical, ":443")
}

// urlHostPort returns the "host:port" a URL is sent to, making the scheme's default
// port explicit.
func urlHostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// redactUserinfo drops anything up to an "@", where a mistaken host string would
// carry credentials, so they never reach an error message.
func redactUserinfo(s string) string {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		return "<redacted>@" + s[i+1:]
	}
	return s
}
