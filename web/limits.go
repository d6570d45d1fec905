package web

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/crmpulse/crmpulse/problem"
)

// Limits on what one request or connection may hold.
const (
	// maxBody is the largest body of any route but ingest's (which reads
	// up to ingest.MaxBody itself).
	maxBody = 1 << 20
	// pongWait is how long a websocket may stay silent, pongs included;
	// the writer pings every 30 seconds.
	pongWait = 75 * time.Second
	// limiterIdle is how long an unused rate limiter is kept.
	limiterIdle = 10 * time.Minute
)

// securityState is the server's mutable security machinery: rate limiters
// and the metrics of refusals.
type securityState struct {
	refused *prometheus.CounterVec
	limited *prometheus.CounterVec

	hooks  *limiters
	signin *limiters
}

func newSecurityState(reg prometheus.Registerer, cfg *Security) *securityState {
	st := &securityState{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_auth_refused_total", Help: "Requests refused by authentication or authorization, by reason.",
		}, []string{"reason"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmpulse_rate_limited_total", Help: "Requests refused by a rate limit, by route (hook source or signin).",
		}, []string{"route"}),
		hooks:  newLimiters(rate.Limit(cfg.HookRPS), cfg.HookBurst),
		signin: newLimiters(rate.Limit(cfg.SigninPerMinute/60), max(int(math.Ceil(cfg.SigninPerMinute)), 1)),
	}
	if reg != nil {
		reg.MustRegister(st.refused, st.limited)
	}
	return st
}

// limiters are token buckets by key (a client address, with a route).
type limiters struct {
	every rate.Limit
	burst int

	mu    sync.Mutex
	byKey map[string]*limiter
	swept time.Time
}

type limiter struct {
	*rate.Limiter
	used time.Time
}

func newLimiters(every rate.Limit, burst int) *limiters {
	return &limiters{every: every, burst: burst, byKey: map[string]*limiter{}, swept: time.Now()}
}

// allow takes a token from key's bucket; a zero rate allows everything.
// When the bucket is empty it returns how long until it holds a token.
func (l *limiters) allow(key string, now time.Time) (bool, time.Duration) {
	if l.every <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > limiterIdle {
		for k, lim := range l.byKey {
			if now.Sub(lim.used) > limiterIdle {
				delete(l.byKey, k)
			}
		}
		l.swept = now
	}
	lim := l.byKey[key]
	if lim == nil {
		lim = &limiter{Limiter: rate.NewLimiter(l.every, l.burst)}
		l.byKey[key] = lim
	}
	lim.used = now
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(missing / float64(l.every) * float64(time.Second))
}

// clientAddr is the request's peer address without the port. Forwarded
// headers are not trusted: behind a proxy, every client shares its limit.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// rateLimited answers 429 when key's bucket is empty, with Retry-After
// saying in whole seconds when the next attempt is allowed.
func (s *Server) rateLimited(w http.ResponseWriter, l *limiters, route, key string) bool {
	ok, wait := l.allow(key, time.Now())
	if ok {
		return false
	}
	s.sec.limited.WithLabelValues(route).Inc()
	w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1)))
	problem.Write(w, http.StatusTooManyRequests, "too many requests from your address; slow down", nil)
	return true
}

// limitHooks rate-limits each (hook source, client address) before the
// hook reads the body.
func (s *Server) limitHooks(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		source := r.PathValue("source")
		if s.rateLimited(w, s.sec.hooks, "hook:"+source, source+"\x00"+clientAddr(r)) {
			return
		}
		next(w, r)
	}
}

// limitBodies caps every body but ingest's at maxBody.
func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" && !strings.HasPrefix(r.URL.Path, "/v1/hooks/") {
			if r.ContentLength > maxBody {
				problem.Write(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxBody), nil)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether a browser's request comes from crmpulse's own
// pages: no Origin (not a browser, or a same-origin GET), an Origin whose
// host is the request's Host, or the configured public URL's origin.
func (s *Server) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if s.cfg.Security.PublicURL == "" {
		return false
	}
	pub, err := url.Parse(s.cfg.Security.PublicURL)
	return err == nil && strings.EqualFold(u.Scheme, pub.Scheme) && strings.EqualFold(u.Host, pub.Host)
}

// upgrader returns the websocket upgrader, whose origin check honours the
// public URL as well as the Host. Clients are sent prepared frames, which
// gorilla writes without its write buffer, so the buffers come from a pool
// instead of 16 KiB held by every connection.
func (h *Hub) upgrader() *websocket.Upgrader {
	h.upgradeOnce.Do(func() {
		h.upgrade = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 16 << 10,
			WriteBufferPool: new(sync.Pool), HandshakeTimeout: 10 * time.Second, CheckOrigin: h.srv.sameOrigin,
			// A request that is no websocket handshake gets a problem
			// like every other refusal, not gorilla's plain text.
			Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
				problem.Write(w, status, "GET /v1/live is a websocket: "+reason.Error(), nil)
			}}
	})
	return &h.upgrade
}

// keepAlive drops a websocket that stays silent for pongWait: every
// message or pong moves the read deadline on.
func keepAlive(conn *websocket.Conn) func() {
	extend := func() { conn.SetReadDeadline(time.Now().Add(pongWait)) }
	extend()
	conn.SetPongHandler(func(string) error { extend(); return nil })
	return extend
}

// Timeouts are the HTTP server's limits, so that a slow client cannot
// hold a connection: headers within ReadHeaderTimeout, the whole request
// within ReadTimeout, the answer within WriteTimeout (a CSV export moves
// its own deadline on), an idle keep-alive connection closed after
// IdleTimeout. Websockets clear these when they upgrade and keep their
// own deadlines.
func Timeouts(srv *http.Server) {
	srv.ReadHeaderTimeout = 10 * time.Second
	srv.ReadTimeout = 2 * time.Minute
	srv.WriteTimeout = 2 * time.Minute
	srv.IdleTimeout = 2 * time.Minute
	srv.MaxHeaderBytes = 64 << 10
}

// extendWrite gives a long answer (an export) more time to be written.
func extendWrite(w http.ResponseWriter, d time.Duration) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}
