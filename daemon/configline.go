package daemon

import (
	"fmt"
	"strings"
)

// ConfigError is a problem with one key of a config file. Error gives
// "FILE:LINE: KEY: what is wrong" (without LINE when the key's line is
// unknown, e.g. for a Config built in code).
type ConfigError struct {
	File string // the config file; "" for a Config not loaded from a file
	Line int    // 1-based line of Key in File; 0 if unknown
	Key  string // "link.window", "sites[1].nodes[0].paths.fiber"
	Msg  string
}

func (e *ConfigError) Error() string {
	where := e.File
	if where == "" {
		where = "config"
	}
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, e.Line)
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Key, e.Msg)
}

// lineOfKey finds the line of a TOML document that defines key, a dotted
// path in which arrays of tables carry their index ("sites[1].nodes[0]",
// as Validate names keys): the key's own line, the line of the inline
// table that holds it, the header of the table it names, else the
// header of the table it would be in. 0 if none.
func lineOfKey(data []byte, key string) int {
	arrays := map[string]int{} // array of tables (indexed path) -> index of its last element
	table := ""
	fallback, fallbackTable := 0, ""
	resolve := func(name string, newElement bool) string {
		path := ""
		parts := splitKey(name)
		for i, part := range parts {
			if path != "" {
				path += "."
			}
			path += part
			if i == len(parts)-1 && newElement {
				n, ok := arrays[path]
				if !ok {
					n = -1
				}
				arrays[path] = n + 1
			}
			if n, ok := arrays[path]; ok {
				path = fmt.Sprintf("%s[%d]", path, n)
			}
		}
		return path
	}
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		var header string
		switch {
		case line == "" || line[0] == '#':
			continue
		case strings.HasPrefix(line, "[["):
			end := strings.Index(line, "]]")
			if end < 0 {
				continue
			}
			table = resolve(line[2:end], true)
			header = table
		case line[0] == '[':
			end := strings.Index(line, "]")
			if end < 0 {
				continue
			}
			table = resolve(line[1:end], false)
			header = table
		default:
			eq := strings.Index(line, "=")
			if eq < 0 {
				continue
			}
			full := strings.Join(splitKey(line[:eq]), ".")
			if table != "" {
				full = table + "." + full
			}
			if full == key || strings.HasPrefix(key, full+".") || strings.HasPrefix(key, full+"[") {
				return i + 1
			}
			continue
		}
		switch {
		case header == key || strings.HasPrefix(header, key+"["):
			return i + 1 // the table, or the first element of the array
		case strings.HasPrefix(key, header+".") && len(header) > len(fallbackTable):
			// the innermost table holding a key left at its default
			fallback, fallbackTable = i+1, header
		}
	}
	return fallback
}

// splitKey splits a TOML dotted key, dropping quotes and blanks.
func splitKey(k string) []string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return parts
}
