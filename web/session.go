package web

import (
	"crypto/rand"
	"encoding/base64"
	"html/template"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/crmpulse/crmpulse/auth"
	"github.com/crmpulse/crmpulse/problem"
)

// oidcCookie holds a sign-in through the provider while it is under way.
const oidcCookie = "crmpulse_oidc"

// routeSecurity adds the sign-in routes and the audit log.
func (s *Server) routeSecurity(mux *http.ServeMux) {
	mux.HandleFunc("GET /signin", s.serveSignin)
	mux.HandleFunc("GET /signin.css", serveSigninCSS)
	mux.HandleFunc("POST /signin", s.signin)
	mux.HandleFunc("POST /signout", s.signout)
	mux.HandleFunc("GET /signin/oidc", s.signinOIDC)
	mux.HandleFunc("GET /signin/oidc/callback", s.signinOIDCCallback)
	mux.Handle("GET /v1/audit", s.need(scopeAdmin, s.serveAudit))
}

var signinPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · crmpulse</title><link rel="stylesheet" href="/signin.css"></head>
<body><main><h1>crmpulse</h1>
{{if .Failed}}<p class="error" role="alert">{{.Failed}}</p>{{end}}
{{if .Passwords}}<form method="post" action="/signin">
<input type="hidden" name="next" value="{{.Next}}">
<label>Name <input name="name" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>{{end}}
{{if .OIDC}}<p><a class="button" href="/signin/oidc?next={{.Next}}">Sign in with your organisation</a></p>{{end}}
{{if not (or .Passwords .OIDC)}}<p>No sign-in is configured: reads are served on the local address only.</p>{{end}}
</main></body></html>
`))

const signinCSS = `body{font:16px/1.4 system-ui,sans-serif;background:#0f172a;color:#e2e8f0;display:grid;place-items:center;min-height:100vh;margin:0}
main{background:#1e293b;padding:2rem;border-radius:.5rem;min-width:18rem}
label{display:block;margin:.75rem 0}input{display:block;width:100%;padding:.4rem;box-sizing:border-box}
button,.button{padding:.5rem 1rem;background:#38bdf8;color:#0f172a;border:0;border-radius:.25rem;text-decoration:none;cursor:pointer}
.error{color:#fca5a5}
`

func serveSigninCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write([]byte(signinCSS))
}

type signinView struct {
	Failed          string
	Next            string
	Passwords, OIDC bool
}

func (s *Server) renderSignin(w http.ResponseWriter, r *http.Request, status int, failed string) {
	sec := &s.cfg.Security
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	signinPage.Execute(w, signinView{Failed: failed, Next: localPath(r.FormValue("next")),
		Passwords: sec.Passwords != nil && sec.Passwords.Len() > 0, OIDC: sec.OIDC != nil})
}

// serveSignin handles GET /signin, the public sign-in page.
func (s *Server) serveSignin(w http.ResponseWriter, r *http.Request) {
	s.renderSignin(w, r, http.StatusOK, "")
}

// signin handles POST /signin: a name and a password from the form.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	sec := &s.cfg.Security
	if s.rateLimited(w, s.sec.signin, "signin", clientAddr(r)) {
		return
	}
	if !s.sameOrigin(r) {
		problem.Write(w, http.StatusForbidden, "the form was sent from another site", nil)
		return
	}
	if sec.Passwords == nil || sec.Sessions == nil {
		problem.Write(w, http.StatusNotFound, "sign-in with a password is not configured", nil)
		return
	}
	name := r.PostFormValue("name")
	p, err := sec.Passwords.Check(name, r.PostFormValue("password"))
	if err != nil {
		s.sec.refused.WithLabelValues("bad_password").Inc()
		s.audit(r, auth.Principal{Name: name, Kind: "password"}, "signin.failed", "")
		s.renderSignin(w, r, http.StatusUnauthorized, "Unknown name or wrong password.")
		return
	}
	s.startSession(w, r, p, r.PostFormValue("next"))
}

// startSession sets the session cookie and sends the browser on.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, p auth.Principal, next string) {
	sec := &s.cfg.Security
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sec.Sessions.Encode(p, time.Now()), Path: "/",
		MaxAge: int(sec.Sessions.TTL().Seconds()), HttpOnly: true, Secure: sec.Secure, SameSite: http.SameSiteLaxMode})
	s.audit(r, p, "signin", "")
	http.Redirect(w, r, localPath(next), http.StatusSeeOther)
}

// signout handles POST /signout.
func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		problem.Write(w, http.StatusForbidden, "the form was sent from another site", nil)
		return
	}
	if p, found, _ := s.principalOf(r); found {
		s.audit(r, p, "signout", "")
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.cfg.Security.Secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// localPath returns next when it is a path on this site, else "/": a
// sign-in never sends the browser elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func randomText() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// signinOIDC handles GET /signin/oidc: off to the provider, with state,
// nonce and PKCE verifier kept in a signed cookie for the callback.
func (s *Server) signinOIDC(w http.ResponseWriter, r *http.Request) {
	sec := &s.cfg.Security
	if sec.OIDC == nil || sec.Sessions == nil {
		problem.Write(w, http.StatusNotFound, "no OpenID Connect provider is configured", nil)
		return
	}
	if s.rateLimited(w, s.sec.signin, "signin", clientAddr(r)) {
		return
	}
	state, nonce, verifier := randomText(), randomText(), oauth2.GenerateVerifier()
	value := strings.Join([]string{state, nonce, verifier, localPath(r.URL.Query().Get("next"))}, " ")
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: sec.Sessions.Seal(value, 10*time.Minute, time.Now()),
		Path: "/signin/oidc", MaxAge: 600, HttpOnly: true, Secure: sec.Secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, sec.OIDC.AuthURL(state, nonce, verifier), http.StatusFound)
}

// signinOIDCCallback handles the provider's redirect back.
func (s *Server) signinOIDCCallback(w http.ResponseWriter, r *http.Request) {
	sec := &s.cfg.Security
	if sec.OIDC == nil || sec.Sessions == nil {
		problem.Write(w, http.StatusNotFound, "no OpenID Connect provider is configured", nil)
		return
	}
	c, err := r.Cookie(oidcCookie)
	var value string
	if err == nil {
		value, err = sec.Sessions.Unseal(c.Value, time.Now())
	}
	parts := strings.SplitN(value, " ", 4)
	if err != nil || len(parts) != 4 || r.URL.Query().Get("state") != parts[0] {
		s.renderSignin(w, r, http.StatusBadRequest, "The sign-in expired or did not start here; try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Path: "/signin/oidc", MaxAge: -1})
	p, err := sec.OIDC.Exchange(r.Context(), r.URL.Query().Get("code"), parts[2], parts[1])
	if err != nil {
		s.sec.refused.WithLabelValues("oidc").Inc()
		s.logger.Warn("sign-in through the provider failed", "err", err)
		s.audit(r, auth.Principal{Name: "unknown", Kind: "oidc"}, "signin.failed", "")
		s.renderSignin(w, r, http.StatusUnauthorized, "The provider's answer was not accepted.")
		return
	}
	s.startSession(w, r, p, parts[3])
}
