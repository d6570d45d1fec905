package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/problem"
)

// MaxBody is the largest request body ingest reads.
const MaxBody = 32 << 20

// Handler serves POST /v1/events and POST /v1/hooks/{source}: it decodes a
// delivery and answers 2xx only once the log holds every event of it.
type Handler struct {
	log    crmpulse.Log
	hooks  map[string]Hook
	logger *slog.Logger
	now    func() time.Time
	attr   Attributor

	accepted *prometheus.CounterVec
	refused  *prometheus.CounterVec
	ignored  *prometheus.CounterVec
	gaps     *prometheus.CounterVec
	dead     *prometheus.CounterVec
}

// appendTimeout bounds how long a request waits for the log; the sender
// then gets a 503 and retries, which counts nothing twice.
const appendTimeout = 30 * time.Second

// NewHandler returns a handler that appends to log, with the given hooks
// by name. Its metrics are registered with reg.
func NewHandler(log crmpulse.Log, hooks []Hook, reg prometheus.Registerer, logger *slog.Logger) *Handler {
	h := &Handler{
		log: log, hooks: map[string]Hook{}, logger: logger.With("component", "ingest"), now: time.Now,
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_events_accepted_total", Help: "Events stored on the log, by source route.",
		}, []string{"route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_deliveries_refused_total", Help: "Deliveries refused, by route and HTTP status.",
		}, []string{"route", "status"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_events_ignored_total", Help: "Well-formed events of types crmpulse does not count.",
		}, []string{"route", "type"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_source_gaps_total", Help: "Changes a source reported lost without naming records.",
		}, []string{"route", "type"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_dead_letters_total", Help: "Parts of accepted deliveries that could not be decoded, stored with the reason.",
		}, []string{"route"}),
	}
	for _, hk := range hooks {
		h.hooks[hk.Name()] = hk
	}
	reg.MustRegister(h.accepted, h.refused, h.ignored, h.gaps, h.dead)
	return h
}

// Attributor finds who acted in a delivery's unattributed events, by its
// Lookups, before they are appended. It never fails the delivery: an event
// it cannot attribute stays unattributed and is counted so. It is called
// concurrently and must return within its own time bound.
type Attributor interface {
	Attribute(ctx context.Context, source string, d *Delivery)
}

// SetAttributor makes the handler apply a before appending each hook's
// delivery. Call it before serving.
func (h *Handler) SetAttributor(a Attributor) { h.attr = a }

// ServeEvents handles POST /v1/events.
func (h *Handler) ServeEvents(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, "events")
	if !ok {
		return
	}
	events, _, errs, err := DecodeEvents(body, h.now())
	if err != nil {
		h.refuse(w, "events", err)
		return
	}
	partial, _ := strconv.ParseBool(r.URL.Query().Get("partial"))
	if len(errs) > 0 && !partial {
		h.refused.WithLabelValues("events", "422").Inc()
		problem.Write(w, http.StatusUnprocessableEntity,
			fmt.Sprintf("%d invalid field(s); nothing of the request was accepted", len(errs)), errs)
		return
	}
	if err := h.append(r.Context(), "events", events); err != nil {
		problem.Write(w, http.StatusServiceUnavailable, "the event log did not store the events; retry the request", nil)
		return
	}
	answer := map[string]any{"accepted": len(events)}
	if partial {
		if errs == nil {
			errs = []crmpulse.FieldError{}
		}
		answer["rejected"] = errs
	}
	writeJSON(w, http.StatusAccepted, answer)
}

// ServeHook handles POST /v1/hooks/{source}.
func (h *Handler) ServeHook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("source")
	hook, ok := h.hooks[name]
	if !ok {
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("no source named %q is configured", name), nil)
		return
	}
	body, ok := h.readBody(w, r, name)
	if !ok {
		return
	}
	d, err := hook.Decode(r, body, h.now())
	if err != nil {
		h.refuse(w, name, err)
		return
	}
	if h.attr != nil && len(d.Lookups) > 0 {
		h.attr.Attribute(r.Context(), name, d)
	}
	for i := range d.Events {
		d.Events[i].Normalize()
		d.Events[i].Received = h.now().UTC()
	}
	if err := h.append(r.Context(), name, d.Events); err != nil {
		problem.Write(w, http.StatusServiceUnavailable, "the event log did not store the events; retry the delivery", nil)
		return
	}
	h.count(name, d)
	if err := h.deadLetters(r.Context(), name, d.DeadLetters); err != nil {
		problem.Write(w, http.StatusServiceUnavailable, "the dead-letter store did not take the undecodable items; retry the delivery", nil)
		return
	}
	if d.Status != 0 {
		w.Header().Set("Content-Type", d.ContentType)
		w.WriteHeader(d.Status)
		w.Write(d.Body)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(d.Events)})
}

func (h *Handler) count(route string, d *Delivery) {
	for typ, n := range d.Ignored {
		h.ignored.WithLabelValues(route, typ).Add(float64(n))
	}
	for typ, n := range d.Gaps {
		h.gaps.WithLabelValues(route, typ).Add(float64(n))
		h.logger.Warn("source reported lost changes", "source", route, "type", typ, "count", n)
	}
}

// DeadLetterLog is a log that can also keep what could not be decoded,
// with the reason. Both backends are.
type DeadLetterLog interface {
	DeadLetter(ctx context.Context, source, reason string, data []byte) error
}

// deadLetters stores the undecodable parts of an accepted delivery, so that
// nothing accepted is lost.
func (h *Handler) deadLetters(ctx context.Context, route string, dls []DeadLetter) error {
	store, ok := h.log.(DeadLetterLog)
	for _, dl := range dls {
		h.dead.WithLabelValues(route).Inc()
		h.logger.Warn("part of a delivery not decoded", "source", route, "reason", dl.Reason)
		if !ok {
			continue
		}
		if err := store.DeadLetter(ctx, route, dl.Reason, dl.Data); err != nil {
			h.logger.Error("dead letter not stored", "source", route, "err", err)
			return err
		}
	}
	return nil
}

func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, route string) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.refused.WithLabelValues(route, "413").Inc()
			problem.Write(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBody), nil)
		} else {
			problem.Write(w, http.StatusBadRequest, "the body could not be read", nil)
		}
		return nil, false
	}
	return body, true
}

func (h *Handler) refuse(w http.ResponseWriter, route string, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = BadRequest("%v", err)
	}
	h.refused.WithLabelValues(route, fmt.Sprint(e.Status)).Inc()
	problem.Write(w, e.Status, e.Detail, e.Errors)
}

// append stores the events on the log, or fails with nothing promised.
func (h *Handler) append(ctx context.Context, route string, events []crmpulse.Event) error {
	if len(events) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	if err := h.log.Append(ctx, events); err != nil {
		h.logger.Error("append to log failed", "source", route, "events", len(events), "err", err)
		return err
	}
	h.accepted.WithLabelValues(route).Add(float64(len(events)))
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
