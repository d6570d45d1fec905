package ingest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/crmpulse/crmpulse"
)

// Hook decodes one CRM's webhook deliveries into canonical events. Each
// source has its own package (ingest/hubspot, ingest/salesforce, ...) with a
// constructor that takes the source's secrets.
//
// Decode is called concurrently by the HTTP server, once per request, with
// the raw body already read (signatures cover the raw bytes). It returns an
// *Error for a delivery that must be refused with a 4xx; anything else it
// cannot decode but must acknowledge goes in Delivery.DeadLetters.
type Hook interface {
	// Name is the path segment of POST /v1/hooks/{name}.
	Name() string
	Decode(r *http.Request, body []byte, now time.Time) (*Delivery, error)
}

// Delivery is what a hook made of one request.
type Delivery struct {
	// Events are the canonical events, in delivery order. They are
	// appended to the log before the sender gets its 2xx.
	Events []crmpulse.Event
	// Ignored counts the delivery's event types that crmpulse does not
	// count (association changes, snapshots, ...), by type, for a metric.
	Ignored map[string]int
	// Gaps counts changes the source reports as lost without naming the
	// records (Salesforce GAP_OVERFLOW), by type, for a metric and a log.
	Gaps map[string]int
	// DeadLetters are parts of an accepted delivery that could not be
	// decoded; they are stored with the reason, never dropped.
	DeadLetters []DeadLetter
	// Lookups say where the records of unattributed events can be read
	// back from the source, so that an Attributor can find who acted.
	Lookups []Lookup
	// Status, ContentType and Body, when Status is set, replace the
	// default 202 answer (a SOAP acknowledgement, a validation token).
	Status      int
	ContentType string
	Body        []byte
}

// Lookup is where the record of one unattributed event can be read back.
type Lookup struct {
	// Event is the event's index in Delivery.Events.
	Event int
	// Resource is the record's address at the source, as that source's
	// Attributor reads it: Business Central's resource path, HubSpot's
	// "objectType/objectId".
	Resource string
}

// DeadLetter is a part of a delivery that could not be decoded.
type DeadLetter struct {
	Reason string `json:"reason"`
	Data   []byte `json:"data"`
}

// Error refuses a delivery: it is answered with Status and a problem+json
// body naming the problem.
type Error struct {
	Status int
	Title  string
	Detail string
	Errors []crmpulse.FieldError
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail)
}

// Unauthorized refuses a delivery whose signature, token or credentials do
// not check out.
func Unauthorized(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Title: "unauthorized", Detail: fmt.Sprintf(format, args...)}
}

// BadRequest refuses a delivery that cannot be read.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Title: "bad request", Detail: fmt.Sprintf(format, args...)}
}
