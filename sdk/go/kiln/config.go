package kiln

import (
	"strconv"
	"strings"
)

// Config is the configuration a plugin was called with: text keys and values, parsed on
// demand. A key given twice takes its last value. The typed getters return the default
// when a key is not set, and an invalid-config error naming the key when its value is bad.
type Config struct {
	pairs [][2]string
}

// NewConfig is a config of alternating keys and values, e.g. to call a plugin's functions
// in a test: kiln.NewConfig("target", "species", "min_fraction", "0.1").
func NewConfig(keysAndValues ...string) Config {
	var c Config
	for i := 0; i+1 < len(keysAndValues); i += 2 {
		c.pairs = append(c.pairs, [2]string{keysAndValues[i], keysAndValues[i+1]})
	}
	return c
}

// Pairs are the key/value pairs, in the order given.
func (c Config) Pairs() [][2]string {
	return c.pairs
}

// Get is the value of key, if set.
func (c Config) Get(key string) (string, bool) {
	for i := len(c.pairs) - 1; i >= 0; i-- {
		if c.pairs[i][0] == key {
			return c.pairs[i][1], true
		}
	}
	return "", false
}

// Has reports whether key is set.
func (c Config) Has(key string) bool {
	_, ok := c.Get(key)
	return ok
}

// Require is the value of key; a key not set is an invalid-config error.
func (c Config) Require(key string) (string, error) {
	v, ok := c.Get(key)
	if !ok {
		return "", InvalidConfig("missing config key `%s`", key)
	}
	return v, nil
}

// Text is the value of key, or def when it is not set.
func (c Config) Text(key, def string) string {
	if v, ok := c.Get(key); ok {
		return v
	}
	return def
}

// Float64 is the value of key as a number, or def when it is not set. NaN is refused.
func (c Config) Float64(key string, def float64) (float64, error) {
	v, ok := c.Get(key)
	if !ok {
		return def, nil
	}
	x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || x != x {
		return def, InvalidConfig("config key `%s` = `%s`: not a number", key, v)
	}
	return x, nil
}

// Int is the value of key as an integer, or def when it is not set.
func (c Config) Int(key string, def int) (int, error) {
	v, ok := c.Get(key)
	if !ok {
		return def, nil
	}
	x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 0)
	if err != nil {
		return def, InvalidConfig("config key `%s` = `%s`: not an integer", key, v)
	}
	return int(x), nil
}

// Bool is the value of key as a boolean (true/false, yes/no, on/off, 1/0), or def when
// it is not set.
func (c Config) Bool(key string, def bool) (bool, error) {
	v, ok := c.Get(key)
	if !ok {
		return def, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return def, InvalidConfig("config key `%s` = `%s`: not a boolean (true or false)", key, v)
}

// List is the value of key split at commas, trimmed, without empty items; empty when the
// key is not set.
func (c Config) List(key string) []string {
	v, _ := c.Get(key)
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Choice is the value of key, which must be one of allowed, or def when it is not set.
func (c Config) Choice(key, def string, allowed ...string) (string, error) {
	v, ok := c.Get(key)
	if !ok {
		return def, nil
	}
	v = strings.TrimSpace(v)
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return def, InvalidConfig("config key `%s` = `%s`: must be one of %s", key, v, strings.Join(allowed, ", "))
}

// Severity is the value of key as a check severity (error, warning or info), or def when
// it is not set.
func (c Config) Severity(key string, def Severity) (Severity, error) {
	v, err := c.Choice(key, def.String(), "error", "warning", "info")
	if err != nil {
		return def, err
	}
	switch v {
	case "info":
		return SeverityInfo, nil
	case "warning":
		return SeverityWarning, nil
	default:
		return SeverityError, nil
	}
}
