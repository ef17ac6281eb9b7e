package kiln

import "fmt"

// ErrorKind says what went wrong, as the host reports it.
type ErrorKind uint8

// The error kinds of the contract, numbered as the WIT declares them.
const (
	// ErrorInvalidInput: an input is missing, of the wrong kind, or holds bad data.
	ErrorInvalidInput ErrorKind = 0
	// ErrorInvalidConfig: a config key is missing or holds a bad value.
	ErrorInvalidConfig ErrorKind = 1
	// ErrorUnsupported: the plugin does not support what was asked.
	ErrorUnsupported ErrorKind = 2
	// ErrorInternal: something went wrong inside the plugin.
	ErrorInternal ErrorKind = 3
)

// String is the kind's name, as the WIT spells it.
func (k ErrorKind) String() string {
	switch k {
	case ErrorInvalidInput:
		return "invalid-input"
	case ErrorInvalidConfig:
		return "invalid-config"
	case ErrorUnsupported:
		return "unsupported"
	default:
		return "internal"
	}
}

// Error is a failure a plugin reports on purpose. It implements the error interface, so
// plugin functions return it as an ordinary Go error; any other error (or a panic) reaches
// the host as an internal error. Wrapping keeps the kind: fmt.Errorf("loading: %w", err).
type Error struct {
	Kind    ErrorKind
	Message string
}

// Error returns the message.
func (e *Error) Error() string {
	return e.Message
}

// NewError is an error of the given kind. With no args, format is used as is.
func NewError(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: sprintf(format, args)}
}

// InvalidInput is an invalid-input error: an input is missing, of the wrong kind, or holds bad data.
func InvalidInput(format string, args ...any) *Error {
	return NewError(ErrorInvalidInput, format, args...)
}

// InvalidConfig is an invalid-config error: a config key is missing or holds a bad value.
func InvalidConfig(format string, args ...any) *Error {
	return NewError(ErrorInvalidConfig, format, args...)
}

// Unsupported is an unsupported error: the plugin does not support what was asked.
func Unsupported(format string, args ...any) *Error {
	return NewError(ErrorUnsupported, format, args...)
}

// Internal is an internal error: something went wrong inside the plugin.
func Internal(format string, args ...any) *Error {
	return NewError(ErrorInternal, format, args...)
}

func sprintf(format string, args []any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
