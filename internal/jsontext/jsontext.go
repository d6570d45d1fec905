// Package jsontext writes JSON strings as encoding/json writes them, for
// the encoders that build JSON by hand on hot paths (the report, the log's
// batches).
package jsontext

import (
	"encoding/json"
	"unicode/utf8"
)

// AppendString appends s quoted, byte for byte as json.Marshal writes it.
// A string of plain ASCII is copied between quotes; any other (quotes,
// control characters, <, > and &, anything not ASCII) is left to
// encoding/json.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
