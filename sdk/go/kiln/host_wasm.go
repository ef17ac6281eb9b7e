//go:build wasm

package kiln

import "wit_component/kiln_plugin_log"

// native is false in a component: log and tracking calls reach the host.
const native = false

func hostLog(level Level, message string) {
	kiln_plugin_log.Log(kiln_plugin_log.Level(level), message)
}
