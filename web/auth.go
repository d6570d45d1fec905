package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/audit"
	"github.com/crmpulse/crmpulse/auth"
	"github.com/crmpulse/crmpulse/problem"
)

// Security is who may do what, and the limits on what they may ask. A nil
// field turns its feature off.
type Security struct {
	Passwords *auth.Passwords
	Tokens    *auth.Tokens
	Sessions  *auth.Sessions
	OIDC      *auth.OIDC
	Audit     *audit.Log
	// PublicURL is the external base URL; a websocket or a form whose
	// Origin is this URL's is same-origin.
	PublicURL string
	// Secure marks cookies Secure: crmpulse is served over HTTPS.
	Secure bool
	// HookRPS and HookBurst limit each (hook source, client address);
	// SigninPerMinute each client address's sign-in attempts.
	HookRPS         float64
	HookBurst       int
	SigninPerMinute float64
}

// sessionCookie holds a signed-in person's session.
const sessionCookie = "crmpulse_session"

type principalKey struct{}

// principalOf returns who r comes from, in the order: a bearer token, a
// token in the query (the page's ?token=), a session cookie. presented
// tells whether r carried any credential at all.
func (s *Server) principalOf(r *http.Request) (p auth.Principal, found, presented bool) {
	sec := &s.cfg.Security
	token, bearer := auth.BearerToken(r.Header.Get("Authorization"))
	if !bearer {
		token = r.URL.Query().Get("token")
	}
	if token != "" {
		if sec.Tokens != nil {
			p, found = sec.Tokens.Lookup(token)
		}
		return p, found, true
	}
	if c, err := r.Cookie(sessionCookie); err == nil && sec.Sessions != nil {
		p, err := sec.Sessions.Decode(c.Value, time.Now())
		return p, err == nil, true
	}
	return auth.Principal{}, false, r.Header.Get("Authorization") != ""
}

var scopeNames = map[scope]string{scopeRead: auth.ScopeRead, scopeIngest: auth.ScopeIngest, scopeAdmin: auth.ScopeAdmin}

// authorize returns who may use a route of scope sc, or the status that
// refuses r: 401 without valid credentials, 403 with too few rights.
func (s *Server) authorize(r *http.Request, sc scope) (auth.Principal, int) {
	p, found, presented := s.principalOf(r)
	switch {
	case found && p.Has(scopeNames[sc]):
		return p, 0
	case found:
		return p, http.StatusForbidden
	case s.allowed(r, sc):
		return auth.Principal{Name: "anonymous", Kind: "open", Scopes: []string{auth.ScopeAdmin}}, 0
	case presented:
		s.sec.refused.WithLabelValues("bad_credentials").Inc()
	default:
		s.sec.refused.WithLabelValues("no_credentials").Inc()
	}
	return auth.Principal{}, http.StatusUnauthorized
}

// need refuses a request whose principal lacks scope sc; for reads it
// forces the principal's visibility onto the query and audits the view.
func (s *Server) need(sc scope, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status := s.authorize(r, sc)
		switch status {
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="crmpulse"`)
			problem.Write(w, status, "sign in, or send a bearer token with the right scope", nil)
			return
		case http.StatusForbidden:
			s.sec.refused.WithLabelValues("forbidden").Inc()
			problem.Write(w, status, "your role or token does not allow this", nil)
			return
		}
		if p.Kind == "session" && r.Method != http.MethodGet && !s.sameOrigin(r) {
			problem.Write(w, http.StatusForbidden, "the request comes from another site", nil)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if sc == scopeRead && r.URL.Path != "/v1/live" {
			v := r.URL.Query()
			if err := s.restrict(p, v); err != nil {
				s.sec.refused.WithLabelValues("forbidden").Inc()
				problem.Write(w, http.StatusForbidden, err.Error(), nil)
				return
			}
			u := *r.URL
			u.RawQuery = v.Encode()
			r.URL = &u
		}
		s.audited(w, r, p, next)
	})
}

// principal returns who the request acts for, as need found.
func principal(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

// errOtherTeam refuses a query for a team the principal may not see.
var errOtherTeam = errors.New("you may see your own team only")

// noTeam is a team no person has: the forced filter of a manager whose
// team cannot be told, who therefore sees nobody.
const noTeam = "\x00none"

// visibleTeam returns the one team p may see, or "" when p sees everyone:
// administrators and unrestricted tokens everyone; a manager their
// configured team, else the team of the directory's person of their name,
// else the one team of the people whose manager they are; a viewer or a
// token with a team that team.
func (s *Server) visibleTeam(p auth.Principal) string {
	if p.Has(auth.ScopeAdmin) {
		return ""
	}
	if p.Team != "" || p.Role != auth.RoleManager {
		return p.Team
	}
	people := s.dir.People()
	for _, per := range people {
		if (per.ID == p.Name || per.Name == p.Name) && per.Team != "" {
			return per.Team
		}
	}
	var teams []string
	for _, per := range people {
		if strings.EqualFold(per.Manager, p.Name) && per.Team != "" && !slices.Contains(teams, per.Team) {
			teams = append(teams, per.Team)
		}
	}
	if len(teams) == 1 {
		return teams[0]
	}
	return noTeam
}

// restrict forces p's visibility onto a report's query parameters (a
// request's or a websocket view's): the one place the hierarchy is applied
// to the report, the transactions, the export and the live views.
func (s *Server) restrict(p auth.Principal, v url.Values) error {
	team := s.visibleTeam(p)
	if team == "" {
		return nil
	}
	if asked := v.Get("team"); asked != "" && !strings.EqualFold(asked, team) {
		return errOtherTeam
	}
	v.Set("team", team)
	return nil
}

// sees reports whether p may see person; for lists of people (the
// directory, alerts).
func (s *Server) sees(p auth.Principal, person crmpulse.Person) bool {
	team := s.visibleTeam(p)
	return team == "" || strings.EqualFold(person.Team, team)
}

// visiblePeople returns the directory as r's principal may see it.
func (s *Server) visiblePeople(r *http.Request) []crmpulse.Person {
	p := principal(r)
	out := []crmpulse.Person{}
	for _, per := range s.dir.People() {
		if s.sees(p, per) {
			out = append(out, per)
		}
	}
	return out
}

// scopeView applies the principal of the websocket's request to a view
// it subscribes to, and audits the subscription.
func (s *Server) scopeView(r *http.Request, params url.Values) error {
	p := principal(r)
	if err := s.restrict(p, params); err != nil {
		return err
	}
	s.audit(r, p, "live", subject(params))
	return nil
}

// audited serves r with next and records it in the audit log: a read of
// people's activity when it is asked for, a change once it is made (a
// change refused is not one).
func (s *Server) audited(w http.ResponseWriter, r *http.Request, p auth.Principal, next http.HandlerFunc) {
	v := r.URL.Query()
	switch r.Pattern {
	case "GET /v1/report":
		s.audit(r, p, "view", subject(v))
	case "GET /v1/transactions":
		action := "view"
		if f := v.Get("format"); f == "csv" || f == "xlsx" || strings.Contains(r.Header.Get("Accept"), "text/csv") {
			action = "export"
		}
		s.audit(r, p, action, subject(v))
	case "GET /v1/users":
		s.audit(r, p, "view", "directory")
	case "PUT /v1/users/{id}":
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next(sw, r)
		if sw.status < 300 {
			s.audit(r, p, "user.put", "person="+r.PathValue("id"))
		}
		return
	}
	next(w, r)
}

// statusWriter keeps the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (sw *statusWriter) WriteHeader(code int) {
	sw.status = code
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// subject says whose activity a query reads.
func subject(v url.Values) string {
	var parts []string
	for _, k := range []string{"team", "office", "user"} {
		if val := v.Get(k); val != "" {
			parts = append(parts, k+"="+val)
		}
	}
	if len(parts) == 0 {
		return "everyone"
	}
	return strings.Join(parts, " ")
}

func (s *Server) audit(r *http.Request, p auth.Principal, action, subj string) {
	if s.cfg.Security.Audit == nil {
		return
	}
	s.cfg.Security.Audit.Record(audit.Entry{Actor: p.Name, Via: p.Kind, Action: action, Subject: subj,
		Route: r.Pattern, Remote: clientAddr(r)})
}

// serveAudit handles GET /v1/audit.
func (s *Server) serveAudit(w http.ResponseWriter, r *http.Request) {
	limit, errs := pageLimit(r.URL.Query())
	if len(errs) > 0 {
		problem.Write(w, http.StatusBadRequest, "the query parameters are not valid", errs)
		return
	}
	if s.cfg.Security.Audit == nil {
		writeJSON(w, http.StatusOK, map[string]any{"items": []audit.Entry{}, "next_cursor": nil})
		return
	}
	items, next, err := s.cfg.Security.Audit.List(r.URL.Query().Get("cursor"), limit)
	if errors.Is(err, audit.ErrBadCursor) {
		problem.Write(w, http.StatusBadRequest, err.Error(), []crmpulse.FieldError{{Field: "cursor", Detail: err.Error()}})
		return
	}
	if err != nil {
		s.logger.Error("audit query failed", "err", err)
		problem.Write(w, http.StatusInternalServerError, "the audit log could not be read", nil)
		return
	}
	if items == nil {
		items = []audit.Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nullable(next)})
}
