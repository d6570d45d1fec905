// Package web serves the JSON API, the live websocket and the browser view.
// It answers queries from the aggregate state and forwards the deltas of
// the delta bus to the websocket clients whose views they touch.
package web

import (
	"embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
	"github.com/crmpulse/crmpulse/alert"
	"github.com/crmpulse/crmpulse/directory"
	"github.com/crmpulse/crmpulse/ingest"
	"github.com/crmpulse/crmpulse/problem"
)

//go:embed static
var static embed.FS

// Config holds what the web layer needs to know of the configuration.
type Config struct {
	Location *time.Location
	Rules    crmpulse.PeriodRules
	// IngestToken and AdminToken are bearer tokens; empty means not set.
	IngestToken, AdminToken string
	// Open serves every route without a token: only on a loopback address
	// with no sign-in and no token configured.
	Open bool
	// OpenReads serves reads without a token: on a loopback address with
	// no way for people to sign in.
	OpenReads bool
	Version   string

	// Security is sign-in, tokens, audit and limits (web/auth.go).
	Security Security
	// Targets are the activity goals the page shows actuals against.
	Targets []Target
	// State holds the display tokens (display.go); nil turns them off.
	State *badger.DB
}

// Server is the HTTP face of crmpulse.
type Server struct {
	cfg    Config
	store  Source
	dir    *directory.Directory
	ingest *ingest.Handler
	hub    *Hub
	reg    *prometheus.Registry
	logger *slog.Logger
	ready  func() bool
	alerts *alert.Evaluator
	sec    *securityState
	// display holds the live connections of display tokens (display.go).
	display displayConns
}

// NewServer returns the server over store, the local state or the
// cluster; ready reports whether the log is connected
// and the workers are running.
func NewServer(cfg Config, store Source, dir *directory.Directory, in *ingest.Handler,
	hub *Hub, reg *prometheus.Registry, ready func() bool, logger *slog.Logger) *Server {
	return &Server{cfg: cfg, store: store, dir: dir, ingest: in, hub: hub, reg: reg, ready: ready,
		logger: logger.With("component", "web"), sec: newSecurityState(reg, &cfg.Security)}
}

type scope int

const (
	scopeRead scope = iota
	scopeIngest
	scopeAdmin
)

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", s.need(scopeIngest, s.ingest.ServeEvents))
	mux.HandleFunc("POST /v1/hooks/{source}", s.limitHooks(s.ingest.ServeHook))
	mux.Handle("GET /v1/report", s.need(scopeRead, s.serveReport))
	mux.Handle("GET /v1/transactions", s.need(scopeRead, s.serveTransactions))
	mux.Handle("GET /v1/users", s.need(scopeRead, s.serveUsers))
	mux.Handle("GET /v1/users/unmapped", s.need(scopeRead, s.serveUnmapped))
	mux.Handle("PUT /v1/users/{id}", s.need(scopeAdmin, s.putUser))
	mux.Handle("GET /v1/alerts", s.need(scopeRead, s.serveAlerts))
	mux.Handle("GET /v1/live", s.need(scopeRead, s.hub.ServeHTTP))
	mux.Handle("GET /v1/targets", s.need(scopeRead, s.serveTargets))
	s.displayRoutes(mux) // display.go
	mux.Handle("GET /metrics", s.need(scopeRead, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}).ServeHTTP))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.Version})
	})
	files, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(files))
	s.routeSecurity(mux)
	return securityHeaders(limitBodies(problemFallback(mux)))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: under no-referrer browsers send
		// "Origin: null" with a form's POST, and the origin check then
		// refuses crmpulse's own sign-in form. Other sites still get nothing.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		if r.TLS != nil {
			// Browsers heed HSTS only over HTTPS, so it is sent only there.
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// allowed reports whether r may use a route of scope sc without a session
// or token of its own: the open modes on a loopback address. need (in
// web/auth.go) asks it when no session or token matched.
func (s *Server) allowed(r *http.Request, sc scope) bool {
	// A display token is judged on its own, even where reads are open.
	token := requestToken(r)
	if ok, isDisplay := s.displayAllowed(r, sc, token); isDisplay {
		return ok
	}
	// So is a token that matches nothing: a script with a mistyped token
	// is told so, not served as if it had sent none.
	if token != "" {
		return false
	}
	return s.cfg.Open || (sc == scopeRead && s.cfg.OpenReads)
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if !s.ready() {
		problem.Write(w, http.StatusServiceUnavailable, "the event log or the workers are not running", nil)
		return
	}
	io.WriteString(w, "ready\n")
}

func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	q, errs := s.parseQuery(r.URL.Query(), time.Now())
	if len(errs) > 0 {
		problem.Write(w, http.StatusBadRequest, "the query parameters are not valid", errs)
		return
	}
	rep := s.store.Report(q, s.dir)
	buf := reportBuffers.Get().(*[]byte)
	defer reportBuffers.Put(buf)
	*buf = append(rep.AppendJSON((*buf)[:0]), '\n') // as writeJSON's encoder ends it
	w.Header().Set("Content-Type", "application/json")
	w.Write(*buf)
}

// reportBuffers hold encoded reports between requests: a report of a
// thousand people is a few hundred kilobytes.
var reportBuffers = sync.Pool{New: func() any { return new([]byte) }}

func (s *Server) serveTransactions(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, errs := s.parseQuery(v, time.Now())
	limit, limitErrs := pageLimit(v)
	errs = append(errs, limitErrs...)
	switch v.Get("format") {
	case "", "json", "csv", "xlsx":
	default:
		errs = append(errs, crmpulse.FieldError{Field: "format", Detail: "must be json, csv or xlsx"})
	}
	if len(errs) > 0 {
		problem.Write(w, http.StatusBadRequest, "the query parameters are not valid", errs)
		return
	}
	if v.Get("format") == "csv" || strings.Contains(r.Header.Get("Accept"), "text/csv") {
		s.exportCSV(w, q)
		return
	}
	if v.Get("format") == "xlsx" {
		s.exportXLSX(w, q) // export.go
		return
	}
	items, next, err := s.store.Transactions(q, s.dir, v.Get("cursor"), limit)
	if errors.Is(err, aggregate.ErrBadCursor) || errors.Is(err, aggregate.ErrCursorPeriod) {
		problem.Write(w, http.StatusBadRequest, err.Error(), []crmpulse.FieldError{{Field: "cursor", Detail: err.Error()}})
		return
	}
	if errors.Is(err, ErrUnavailable) {
		problem.Write(w, http.StatusServiceUnavailable, "part of the state is not available: try again shortly", nil)
		return
	}
	if err != nil {
		s.logger.Error("transactions query failed", "err", err)
		problem.Write(w, http.StatusInternalServerError, "the transactions could not be read", nil)
		return
	}
	if items == nil {
		items = []aggregate.Transaction{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nullable(next)})
}

// exportCSV streams every transaction of q as CSV.
func (s *Server) exportCSV(w http.ResponseWriter, q aggregate.Query) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="crmpulse-transactions.csv"`)
	extendWrite(w, 30*time.Minute)
	cw := csv.NewWriter(w)
	cw.Write(exportColumns)
	err := s.store.EachTransaction(q, s.dir, func(t aggregate.Transaction) bool {
		cw.Write(exportRow(t))
		return cw.Error() == nil
	})
	cw.Flush()
	if err != nil {
		s.logger.Error("csv export failed", "err", err)
	}
}

// serveUsers lists the people the request may see, in the directory's
// order, paged: the cursor is the id of the last person of the page before.
func (s *Server) serveUsers(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	limit, errs := pageLimit(v)
	if len(errs) > 0 {
		problem.Write(w, http.StatusBadRequest, "the query parameters are not valid", errs)
		return
	}
	people := s.visiblePeople(r)
	if cursor := v.Get("cursor"); cursor != "" {
		i := slices.IndexFunc(people, func(p crmpulse.Person) bool { return p.ID == cursor })
		if i < 0 {
			problem.Write(w, http.StatusBadRequest, "the cursor names no person",
				[]crmpulse.FieldError{{Field: "cursor", Detail: "not a cursor this server handed out"}})
			return
		}
		people = people[i+1:]
	}
	var next *string
	if len(people) > limit {
		people = people[:limit]
		next = &people[limit-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": people, "next_cursor": next})
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request) {
	var p crmpulse.Person
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&p); err != nil {
		problem.Write(w, http.StatusBadRequest, "the body is not a person as JSON: "+err.Error(), nil)
		return
	}
	id := r.PathValue("id")
	if p.ID != "" && p.ID != id {
		problem.Write(w, http.StatusUnprocessableEntity, "the body's id differs from the path's",
			[]crmpulse.FieldError{{Field: "id", Detail: "must equal the id in the path"}})
		return
	}
	p.ID = id
	if errs := directory.Validate(&p); len(errs) > 0 {
		problem.Write(w, http.StatusUnprocessableEntity, "the person is not valid", errs)
		return
	}
	if err := s.dir.Put(p, time.Now()); err != nil {
		s.logger.Error("store person failed", "err", err)
		problem.Write(w, http.StatusInternalServerError, "the person could not be stored", nil)
		return
	}
	stored, _ := s.dir.Get(id)
	s.hub.Refresh()
	writeJSON(w, http.StatusOK, stored)
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
