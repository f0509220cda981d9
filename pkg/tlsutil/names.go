package tlsutil

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Naming limits.
const (
	// maxNameLen is the longest node name or client identity: the upper
	// bound of an X.509 common name (RFC 5280, ub-common-name).
	maxNameLen = 64
	// maxDNSNameLen and maxLabelLen bound DNS names (RFC 1035).
	maxDNSNameLen = 253
	maxLabelLen   = 63
)

// ValidateName reports whether name may be a node name or client identity:
// 1 to 64 ASCII letters, digits, '.', '_' and '-', starting and ending with
// a letter or digit, with no "..". Such a name is safe as a common name, in
// an ACL policy and in a file name.
func ValidateName(name string) error { return checkName("name", name) }

// checkName is ValidateName; what says which name it is, for the error.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidName, what)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: %s %q is longer than %d bytes", ErrInvalidName, what, name, maxNameLen)
	}
	for i, r := range name {
		switch {
		case r < utf8.RuneSelf && isAlnum(byte(r)):
		case r == '.' || r == '_' || r == '-':
			if i == 0 || i == len(name)-1 {
				return fmt.Errorf("%w: %s %q must start and end with a letter or digit", ErrInvalidName, what, name)
			}
		default:
			return fmt.Errorf("%w: %s %q has character %q; use ASCII letters, digits, '.', '_' and '-'", ErrInvalidName, what, name, r)
		}
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("%w: %s %q contains \"..\"", ErrInvalidName, what, name)
	}
	return nil
}

// checkDNSName reports whether name is a DNS host name usable as a SAN:
// dot-separated labels of letters, digits and inner '-', no wildcards.
// what says which name it is, for the error.
func checkDNSName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidName, what)
	}
	if len(name) > maxDNSNameLen {
		return fmt.Errorf("%w: %s %q is longer than %d bytes", ErrInvalidName, what, name, maxDNSNameLen)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > maxLabelLen {
			return fmt.Errorf("%w: %s %q has an empty or over-long label", ErrInvalidName, what, name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if isAlnum(c) || c == '-' && i != 0 && i != len(label)-1 {
				continue
			}
			return fmt.Errorf("%w: %s %q: label %q may hold only letters, digits and inner '-'", ErrInvalidName, what, name, label)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
