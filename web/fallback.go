package web

import (
	"bufio"
	"net"
	"net/http"
	"strings"

	"github.com/crmpulse/crmpulse/problem"
)

// problemFallback turns the router's own plain-text answers (404 for an
// unknown route, 405 for a known route with another method) into
// problem+json, like every other error crmpulse gives.
func problemFallback(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&fallbackWriter{ResponseWriter: w, r: r}, r)
	})
}

type fallbackWriter struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (fw *fallbackWriter) WriteHeader(code int) {
	plain := strings.HasPrefix(fw.Header().Get("Content-Type"), "text/plain")
	if plain && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		fw.replaced = true
		fw.Header().Del("X-Content-Type-Options")
		detail := "no such route: see API.md for the routes"
		if code == http.StatusMethodNotAllowed {
			detail = fw.r.Method + " is not allowed on " + fw.r.URL.Path + "; allowed: " + fw.Header().Get("Allow")
		}
		problem.Write(fw.ResponseWriter, code, detail, nil)
		return
	}
	fw.ResponseWriter.WriteHeader(code)
}

func (fw *fallbackWriter) Write(b []byte) (int, error) {
	if fw.replaced {
		return len(b), nil // the router's text, already replaced
	}
	return fw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the websocket
// upgrade, write deadlines).
func (fw *fallbackWriter) Unwrap() http.ResponseWriter { return fw.ResponseWriter }

// Hijack hands the connection over to the websocket upgrader, which asks
// for http.Hijacker directly.
func (fw *fallbackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(fw.ResponseWriter).Hijack()
}

// Flush passes streaming exports through.
func (fw *fallbackWriter) Flush() {
	http.NewResponseController(fw.ResponseWriter).Flush()
}
