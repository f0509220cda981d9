package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// ParseSize parses a byte size: a plain number of bytes, or a number with a
// unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of
// 1024). Case-insensitive; no fractions.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q does not start with a number", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	units := map[string]int64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}
	u := strings.ToLower(strings.TrimSpace(t[i:]))
	m, ok := units[u]
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	if n > math.MaxInt64/m {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * m, nil
}

// decodeSize reads an optional size attribute: a string with a unit
// ("64MiB") or a number of bytes.
func decodeSize(expr hcl.Expression, name string, dst *int64) hcl.Diagnostics {
	v, diags := optionalValue(expr)
	if diags.HasErrors() || v == cty.NilVal {
		return diags
	}
	r := expr.Range()
	bad := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + name, Detail: detail, Subject: &r}}
	}
	switch v.Type() {
	case cty.String:
		n, err := ParseSize(v.AsString())
		if err != nil {
			return bad(err.Error())
		}
		*dst = n
	case cty.Number:
		bf := v.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != 0 || n < 0 {
			return bad("A size in bytes must be a non-negative whole number.")
		}
		*dst = n
	default:
		return bad(fmt.Sprintf("A size is a string such as \"64MiB\" or a number of bytes, not a %s.", v.Type().FriendlyName()))
	}
	return nil
}

// decodeDuration reads an optional duration attribute ("30s", "1h30m").
func decodeDuration(expr hcl.Expression, name string, dst *time.Duration) hcl.Diagnostics {
	v, diags := optionalValue(expr)
	if diags.HasErrors() || v == cty.NilVal {
		return diags
	}
	r := expr.Range()
	if v.Type() != cty.String {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + name,
			Detail: "A duration is a string such as \"30s\" or \"1h30m\".", Subject: &r}}
	}
	d, err := time.ParseDuration(v.AsString())
	if err != nil || d < 0 {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + name,
			Detail: fmt.Sprintf("%q is not a non-negative duration such as \"30s\" or \"1h30m\".", v.AsString()), Subject: &r}}
	}
	*dst = d
	return nil
}

// optionalValue evaluates an optional attribute's expression; an absent
// attribute yields cty.NilVal.
func optionalValue(expr hcl.Expression) (cty.Value, hcl.Diagnostics) {
	if expr == nil {
		return cty.NilVal, nil
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if v.IsNull() {
		return cty.NilVal, nil
	}
	return v, nil
}
