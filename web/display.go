package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/auth"
	"github.com/crmpulse/crmpulse/problem"
)

// Display tokens open the page on a wall: read-only, bound to one view
// (the page's query string), revocable. A token is "cpd_" + id + "_" +
// secret; Badger keeps, under "display/" + id, the view and a hash of the
// whole token, never the token itself.

const (
	displayPrefix = "display/"
	displayMark   = "cpd_"
	// defaultWallPeriod is the page's own default, which a view without a
	// period is bound to.
	defaultWallPeriod = crmpulse.PeriodLast4Weeks
)

// displayViewKeys are the query parameters that make a view; a display
// token's request must carry the same values.
var displayViewKeys = []string{"tz", "tenant", "team", "office", "user", "entity", "source", "action"}

// displayPaths are the routes a display token may read.
var displayPaths = []string{"/v1/report", "/v1/transactions", "/v1/live", "/v1/targets"}

// displayRecord is a display token as stored.
type displayRecord struct {
	ID      string     `json:"id"`
	Name    string     `json:"name,omitempty"`
	View    string     `json:"view"`
	Hash    string     `json:"hash,omitempty"`
	Created time.Time  `json:"created"`
	Revoked *time.Time `json:"revoked,omitempty"`
}

// displayConns are the live connections opened with each display token,
// closed when it is revoked.
type displayConns struct {
	mu    sync.Mutex
	conns map[string]map[net.Conn]struct{}
}

func (s *Server) displayRoutes(mux *http.ServeMux) {
	mux.Handle("POST /v1/display-tokens", s.need(scopeAdmin, s.createDisplay))
	mux.Handle("GET /v1/display-tokens", s.need(scopeAdmin, s.listDisplays))
	mux.Handle("DELETE /v1/display-tokens/{id}", s.need(scopeAdmin, s.revokeDisplay))
	// The page asks with its own token whether it still may show data.
	mux.HandleFunc("GET /v1/display", s.serveDisplayState)
}

func (s *Server) createDisplay(w http.ResponseWriter, r *http.Request) {
	if s.cfg.State == nil {
		problem.Write(w, http.StatusNotImplemented, "display tokens need the one-process state", nil)
		return
	}
	var body struct {
		Name string `json:"name"`
		View string `json:"view"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		problem.Write(w, http.StatusBadRequest, "the body is not {\"view\": \"period=...\", \"name\": \"...\"}: "+err.Error(), nil)
		return
	}
	view, errs := s.normalizeView(body.View)
	if len(errs) > 0 {
		problem.Write(w, http.StatusUnprocessableEntity, "the view is not valid", errs)
		return
	}
	id, secret := randomHex(8), randomHex(24)
	token := displayMark + id + "_" + secret
	rec := displayRecord{ID: id, Name: body.Name, View: view, Hash: hashToken(token), Created: time.Now().UTC()}
	if err := s.putDisplay(rec); err != nil {
		s.logger.Error("store display token failed", "err", err)
		problem.Write(w, http.StatusInternalServerError, "the display token could not be stored", nil)
		return
	}
	rec.Hash = ""
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "name": rec.Name, "view": view,
		"created": rec.Created, "token": token, "url": "/?" + view + "&wall=1&token=" + token})
}

// normalizeView checks a view's query string and binds a view without a
// period to the page's default one.
func (s *Server) normalizeView(raw string) (string, []crmpulse.FieldError) {
	v, err := url.ParseQuery(strings.TrimPrefix(raw, "?"))
	if err != nil {
		return "", []crmpulse.FieldError{{Field: "view", Detail: "not a query string: " + err.Error()}}
	}
	v.Del("token")
	if v.Get("period") == "" && v.Get("from") == "" {
		v.Set("period", defaultWallPeriod)
	}
	if _, errs := s.parseQuery(v, time.Now()); len(errs) > 0 {
		return "", errs
	}
	for _, p := range wallPeriods(v) {
		if !slices.Contains(crmpulse.PeriodNames, p) || p == crmpulse.PeriodCustom {
			return "", []crmpulse.FieldError{{Field: "periods", Detail: p + " is not a named period"}}
		}
	}
	return v.Encode(), nil
}

// wallPeriods lists the periods a rotating wall cycles through.
func wallPeriods(v url.Values) []string {
	if v.Get("periods") == "" {
		return nil
	}
	return strings.Split(v.Get("periods"), ",")
}

func (s *Server) listDisplays(w http.ResponseWriter, r *http.Request) {
	items := []displayRecord{}
	if s.cfg.State != nil {
		err := s.cfg.State.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(displayPrefix), PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var rec displayRecord
				if it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &rec) }) == nil {
					rec.Hash = ""
					items = append(items, rec)
				}
			}
			return nil
		})
		if err != nil {
			s.logger.Error("list display tokens failed", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}

// revokeDisplay marks the token revoked (kept, so that its wall can say
// so) and closes the live connections it opened.
func (s *Server) revokeDisplay(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.getDisplay(r.PathValue("id"))
	if !ok {
		problem.Write(w, http.StatusNotFound, "no display token has this id", nil)
		return
	}
	if rec.Revoked == nil {
		now := time.Now().UTC()
		rec.Revoked = &now
		if err := s.putDisplay(rec); err != nil {
			s.logger.Error("revoke display token failed", "err", err)
			problem.Write(w, http.StatusInternalServerError, "the display token could not be revoked", nil)
			return
		}
	}
	s.display.closeAll(rec.ID)
	s.logger.Info("display token revoked", "display", rec.ID)
	w.WriteHeader(http.StatusNoContent)
}

// serveDisplayState tells a page whether its display token still holds:
// 200 with the view, 410 once revoked, 404 for anything else.
func (s *Server) serveDisplayState(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.lookupDisplay(requestToken(r))
	switch {
	case !ok:
		problem.Write(w, http.StatusNotFound, "not a display token", nil)
	case rec.Revoked != nil:
		problem.Write(w, http.StatusGone, "this display was revoked", nil)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": rec.ID, "name": rec.Name, "view": rec.View})
	}
}

// displayAllowed decides a request that carries a display token: isDisplay
// is false when token is no display token, and the caller goes on as
// before. A display token reads only its own view, and only while it is
// not revoked, even where reads are otherwise open.
func (s *Server) displayAllowed(r *http.Request, sc scope, token string) (ok, isDisplay bool) {
	if !strings.HasPrefix(token, displayMark) {
		return false, false
	}
	rec, found := s.lookupDisplay(token)
	if !found || rec.Revoked != nil || sc != scopeRead || r.Method != http.MethodGet ||
		!slices.Contains(displayPaths, r.URL.Path) {
		return false, true
	}
	if r.URL.Path == "/v1/live" || r.URL.Path == "/v1/targets" {
		return true, true // the live view is checked per subscription (displayLive)
	}
	return s.inDisplayView(rec, r.URL.Query(), time.Now()), true
}

// displayLive, for a websocket opened with a display token, returns a check
// of each subscription's view, and registers conn to be closed on revoke;
// release unregisters it.
func (s *Server) displayLive(r *http.Request, conn interface{ NetConn() net.Conn }) (inView func(url.Values) bool, release func()) {
	rec, ok := s.lookupDisplay(requestToken(r))
	if !ok {
		return func(url.Values) bool { return true }, func() {}
	}
	nc := conn.NetConn()
	s.display.add(rec.ID, nc)
	inView = func(v url.Values) bool { return s.inDisplayView(rec, v, time.Now()) }
	return inView, func() { s.display.remove(rec.ID, nc) }
}

// inDisplayView reports whether a query stays in the token's view: the same
// filters, and either one of its periods or the window just before one of
// them, no longer than it (the leaderboard's comparison).
func (s *Server) inDisplayView(rec displayRecord, q url.Values, now time.Time) bool {
	bound, _ := url.ParseQuery(rec.View)
	for _, k := range displayViewKeys {
		if q.Get(k) != bound.Get(k) {
			return false
		}
	}
	periods := append([]string{bound.Get("period")}, wallPeriods(bound)...)
	p := q.Get("period")
	if p == "" && q.Get("from") == "" && q.Get("to") == "" {
		p = crmpulse.PeriodToday
	}
	if p != crmpulse.PeriodCustom && p != "" {
		return slices.Contains(periods, p) && q.Get("from") == "" && q.Get("to") == "" && q.Get("as_of") == ""
	}
	if bound.Get("period") == crmpulse.PeriodCustom && q.Get("from") == bound.Get("from") && q.Get("to") == bound.Get("to") {
		return true
	}
	from, err1 := time.Parse(time.RFC3339Nano, q.Get("from"))
	to, err2 := time.Parse(time.RFC3339Nano, q.Get("to"))
	if err1 != nil || err2 != nil || !from.Before(to) {
		return false
	}
	for _, bp := range periods {
		v := url.Values{}
		for k, vals := range bound {
			v[k] = vals
		}
		v.Set("period", bp)
		bq, errs := s.parseQuery(v, now)
		if len(errs) > 0 {
			continue
		}
		b := bq.Bounds
		length := b.To.Sub(b.From) + time.Minute
		if bp == crmpulse.PeriodCustom {
			length = b.To.Sub(b.From)
		}
		if to.Equal(b.From) && to.Sub(from) <= length {
			return true
		}
	}
	return false
}

// requestToken is the bearer token of a request, or its token parameter.
func requestToken(r *http.Request) string {
	if token, ok := auth.BearerToken(r.Header.Get("Authorization")); ok {
		return token
	}
	return r.URL.Query().Get("token")
}

// lookupDisplay finds the stored record of a display token and checks the
// token against its hash.
func (s *Server) lookupDisplay(token string) (displayRecord, bool) {
	rest, ok := strings.CutPrefix(token, displayMark)
	id, _, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 {
		return displayRecord{}, false
	}
	rec, found := s.getDisplay(id)
	if !found || subtle.ConstantTimeCompare([]byte(rec.Hash), []byte(hashToken(token))) != 1 {
		return displayRecord{}, false
	}
	return rec, true
}

func (s *Server) getDisplay(id string) (displayRecord, bool) {
	var rec displayRecord
	if s.cfg.State == nil || id == "" {
		return rec, false
	}
	err := s.cfg.State.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(displayPrefix + id))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error { return json.Unmarshal(b, &rec) })
	})
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		s.logger.Error("read display token failed", "err", err)
	}
	return rec, err == nil
}

func (s *Server) putDisplay(rec displayRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.cfg.State.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(displayPrefix+rec.ID), data)
	})
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *displayConns) add(id string, c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		d.conns = map[string]map[net.Conn]struct{}{}
	}
	if d.conns[id] == nil {
		d.conns[id] = map[net.Conn]struct{}{}
	}
	d.conns[id][c] = struct{}{}
}

func (d *displayConns) remove(id string, c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.conns[id], c)
	if len(d.conns[id]) == 0 {
		delete(d.conns, id)
	}
}

func (d *displayConns) closeAll(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns[id] {
		c.Close()
	}
}
