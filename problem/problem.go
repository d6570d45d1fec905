// Package problem writes RFC 9457 problem details, the body of every error
// answer crmpulse gives over HTTP.
package problem

import (
	"encoding/json"
	"net/http"

	"github.com/crmpulse/crmpulse"
)

// Details is an application/problem+json body.
type Details struct {
	Type   string                `json:"type"`
	Title  string                `json:"title"`
	Status int                   `json:"status"`
	Detail string                `json:"detail,omitempty"`
	Errors []crmpulse.FieldError `json:"errors,omitempty"`
}

// Write answers with status and a problem body. The title is the status
// text; detail says what to fix.
func Write(w http.ResponseWriter, status int, detail string, errs []crmpulse.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Details{
		Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: detail, Errors: errs,
	})
}
