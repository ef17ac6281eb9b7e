//go:build !wasm

package kiln

import (
	"fmt"
	"os"
	"strings"
)

// native is true when the plugin's code runs outside a component, as in `go test`: log
// and tracking calls print to stderr.
const native = true

func hostLog(level Level, message string) {
	names := [...]string{"trace", "debug", "info", "warn", "error"}
	name := "log"
	if int(level) < len(names) {
		name = names[level]
	}
	fmt.Fprintf(os.Stderr, "[%s] %s\n", strings.ToUpper(name), message)
}
