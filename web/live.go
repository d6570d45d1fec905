package web

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmpulse/crmpulse"
	"github.com/crmpulse/crmpulse/aggregate"
)

// Live-update tuning.
const (
	// frameGap is the least time between two delta frames of a view: a
	// quiet view sends at once, a busy one coalesces its deltas.
	frameGap = 20 * time.Millisecond
	// ringSize is how many recent frames a view keeps for resuming clients.
	ringSize = 1024
	// fanoutPart is how many clients make it worth writing a frame from
	// one more goroutine.
	fanoutPart = 500
	// clientQueue is how many frames a client may lag, beyond what its
	// socket holds, before it is dropped with a resync message.
	clientQueue = 256
	// viewIdle is how long a view without clients is kept for resumes.
	viewIdle = 5 * time.Minute
	// pingEvery is how often a connection is pinged; writeWait bounds the
	// writing of a client's queue, so a stalled client is cut off rather
	// than waited for.
	pingEvery = 30 * time.Second
	writeWait = 10 * time.Second
	// resyncWait bounds the last message to a client being dropped.
	resyncWait = time.Second
	// maxClientMessage bounds what a client may send (a subscribe).
	maxClientMessage = 64 << 10
)

// Hub keeps the live views and their websocket clients. Every client of the
// same view (the same query) sees the same sequence of frames, encoded once.
type Hub struct {
	srv     *Server
	logger  *slog.Logger
	clients prometheus.Gauge
	nextID  atomic.Uint64
	// epoch is where every view's sequence starts: the process's start in
	// milliseconds, so that a client resuming across a restart of the
	// server asks for a sequence this process never had and is told to
	// resync, instead of being "resumed" past the events it missed.
	epoch uint64

	upgradeOnce sync.Once
	upgrade     websocket.Upgrader

	mu    sync.Mutex
	views map[string]*view
}

// NewHub returns a hub answering from srv's state; srv is set by SetServer.
func NewHub(reg prometheus.Registerer, logger *slog.Logger) *Hub {
	h := &Hub{logger: logger.With("component", "live"), views: map[string]*view{},
		epoch: uint64(time.Now().UnixMilli()),
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crmpulse_websocket_clients", Help: "Connected websocket clients.",
		})}
	reg.MustRegister(h.clients)
	return h
}

// SetServer connects the hub to the server whose state it reads.
func (h *Hub) SetServer(s *Server) { h.srv = s }

// Publish offers newly applied events to every view. It is called from
// the delta bus subscription.
func (h *Hub) Publish(events []crmpulse.Event) {
	for _, v := range h.allViews() {
		v.offer(events)
	}
}

// allViews returns the current views, so they can be offered frames
// without holding the hub's lock.
func (h *Hub) allViews() []*view {
	h.mu.Lock()
	defer h.mu.Unlock()
	views := make([]*view, 0, len(h.views))
	for _, v := range h.views {
		views = append(views, v)
	}
	return views
}

// Refresh sends every view a new snapshot, after a change that moves rows
// (the directory changed, a period's bounds moved).
func (h *Hub) Refresh() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.views {
		go v.resnapshot()
	}
}

// Tick moves named periods (midnight for today) and forgets idle views.
func (h *Hub) Tick(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, v := range h.views {
		if v.idle(now) {
			delete(h.views, key)
			continue
		}
		if v.boundsMoved(now) {
			go v.resnapshot()
		}
	}
}

// view returns the view of the query parameters, creating it.
func (h *Hub) view(params url.Values) (*view, []crmpulse.FieldError) {
	clean := url.Values{}
	for _, k := range []string{"period", "tz", "as_of", "from", "to", "tenant", "team", "office", "user", "entity", "source"} {
		if val := params.Get(k); val != "" {
			clean.Set(k, val)
		}
	}
	q, errs := h.srv.parseQuery(clean, time.Now())
	if len(errs) > 0 {
		return nil, errs
	}
	key := clean.Encode()
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.views[key]
	if v == nil {
		v = &view{hub: h, params: clean, from: q.Bounds.From, seq: h.epoch, clients: map[*client]struct{}{}, idleSince: time.Now()}
		h.views[key] = v
	}
	return v, nil
}

// view is one live query and its clients.
type view struct {
	hub    *Hub
	params url.Values

	// fanout is held while a frame is written to the clients, so that
	// frames reach each client in order, and deltas that arrive meanwhile
	// wait in pending for the next frame: a view whose clients take longer
	// than frameGap to be written sends fewer, larger frames.
	fanout sync.Mutex
	// targets is the clients a fan-out writes to; fanout guards it.
	targets []*client

	mu        sync.Mutex
	from      time.Time
	seq       uint64
	ring      []frame
	clients   map[*client]struct{}
	pending   []crmpulse.Event
	timer     *time.Timer
	lastFrame time.Time
	idleSince time.Time
}

// frame is a delta of the view's sequence, its websocket frame built once
// for every client and every resume.
type frame struct {
	seq uint64
	msg []byte
}

// resyncMsg tells a client to subscribe again without since.
var resyncMsg = prepare([]byte(`{"type":"resync"}`))

// prepare builds the websocket frame of an encoded message once, so that
// sending it to many clients costs each of them a write and no copy: a
// server's text frame is a header and the payload, unmasked, and the
// upgrader negotiates no compression.
func prepare(data []byte) []byte {
	msg := make([]byte, 0, 10+len(data))
	msg = append(msg, 0x80|websocket.TextMessage) // final frame of a text message
	switch n := len(data); {
	case n < 126:
		msg = append(msg, byte(n))
	case n < 1<<16:
		msg = append(msg, 126)
		msg = binary.BigEndian.AppendUint16(msg, uint16(n))
	default:
		msg = append(msg, 127)
		msg = binary.BigEndian.AppendUint64(msg, uint64(n))
	}
	return append(msg, data...)
}

func (v *view) query() aggregate.Query {
	q, _ := v.hub.srv.parseQuery(v.params, time.Now())
	return q
}

// offer queues the events that touch the view and schedules a frame.
func (v *view) offer(events []crmpulse.Event) {
	q := v.query()
	dir := v.hub.srv.dir
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range events {
		if q.Matches(&events[i], dir) {
			v.pending = append(v.pending, events[i])
		}
	}
	if len(v.pending) == 0 || v.timer != nil {
		return
	}
	wait := max(frameGap-time.Since(v.lastFrame), 0)
	v.timer = time.AfterFunc(wait, v.flush)
}

// flush sends the pending events as one delta frame to every client.
func (v *view) flush() {
	v.fanout.Lock()
	defer v.fanout.Unlock()
	msg := v.nextDelta()
	if msg == nil {
		return
	}
	v.sendAll(msg)
}

// nextDelta encodes the pending events as the next delta, adds it to the
// ring and takes the clients to send it to into targets; nil when there is
// nothing to send. The caller holds fanout.
func (v *view) nextDelta() []byte {
	q := v.query()
	srv := v.hub.srv
	v.mu.Lock()
	defer v.mu.Unlock()
	v.timer = nil
	if len(v.pending) == 0 {
		return nil
	}
	only := map[string]bool{}
	txs := make([]aggregate.Transaction, 0, len(v.pending))
	for i := range v.pending {
		e := &v.pending[i]
		id, _ := aggregate.RowID(srv.dir, e.Source, e.User)
		only[id] = true
		txs = append(txs, aggregate.NewTransaction(e, srv.dir))
	}
	v.pending = v.pending[:0]
	slices.SortFunc(txs, func(a, b aggregate.Transaction) int { return b.At.Compare(a.At) })
	q.Only = only
	rep := srv.store.Report(q, srv.dir)
	v.seq++
	data, err := json.Marshal(map[string]any{
		"type": "delta", "seq": v.seq, "users": rep.Users, "totals": rep.Totals, "transactions": txs,
	})
	if err != nil {
		v.hub.logger.Error("encode delta", "err", err)
		return nil
	}
	msg := prepare(data)
	v.ring = append(v.ring, frame{v.seq, msg})
	if len(v.ring) > ringSize {
		v.ring = slices.Delete(v.ring, 0, len(v.ring)-ringSize)
	}
	v.lastFrame = time.Now()
	v.takeTargets()
	return msg
}

// takeTargets copies the clients into targets; the caller holds fanout
// and mu. A client that subscribes after this has the frame in its
// snapshot or its resume, and is sent the next.
func (v *view) takeTargets() {
	clear(v.targets)
	v.targets = v.targets[:0]
	for c := range v.clients {
		v.targets = append(v.targets, c)
	}
}

// sendAll writes msg to the targets, on every core: most of a fan-out is
// the clients' write system calls. The caller holds fanout.
func (v *view) sendAll(msg []byte) {
	parts := min(runtime.GOMAXPROCS(0), len(v.targets)/fanoutPart+1)
	var wg sync.WaitGroup
	for i := range parts {
		part := v.targets[i*len(v.targets)/parts : (i+1)*len(v.targets)/parts]
		wg.Go(func() {
			for _, c := range part {
				c.send(msg)
			}
		})
	}
	wg.Wait()
}

// subscribe adds c, answering with a snapshot, or with the frames after
// since when the view still has them, or with a resync.
func (v *view) subscribe(c *client, since *uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clients[c] = struct{}{}
	if since != nil {
		if missed, ok := v.after(*since); ok {
			resumed, _ := json.Marshal(map[string]any{"type": "resumed", "seq": v.seq})
			c.send(prepare(resumed))
			for _, f := range missed {
				c.send(f.msg)
			}
			return
		}
		delete(v.clients, c)
		c.send(resyncMsg)
		return
	}
	c.send(prepare(v.snapshot()))
}

// after returns the frames after seq, if the ring still holds all of them.
func (v *view) after(seq uint64) ([]frame, bool) {
	if seq > v.seq {
		return nil, false
	}
	if seq == v.seq {
		return nil, true
	}
	if len(v.ring) == 0 || v.ring[0].seq > seq+1 {
		return nil, false
	}
	i := int(seq + 1 - v.ring[0].seq)
	return v.ring[i:], true
}

// snapshot encodes the whole report with the view's sequence; the caller
// holds mu, so no delta slips between the two.
func (v *view) snapshot() []byte {
	rep := v.hub.srv.store.Report(v.query(), v.hub.srv.dir)
	data, _ := json.Marshal(map[string]any{"type": "snapshot", "seq": v.seq, "report": rep})
	return data
}

func (v *view) resnapshot() {
	v.fanout.Lock()
	defer v.fanout.Unlock()
	v.mu.Lock()
	v.from = v.query().Bounds.From
	msg := prepare(v.snapshot())
	v.takeTargets()
	v.mu.Unlock()
	v.sendAll(msg)
}

func (v *view) unsubscribe(c *client) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.clients, c)
	if len(v.clients) == 0 {
		v.idleSince = time.Now()
	}
}

func (v *view) idle(now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.clients) == 0 && now.Sub(v.idleSince) > viewIdle
}

func (v *view) boundsMoved(now time.Time) bool {
	q, _ := v.hub.srv.parseQuery(v.params, now)
	v.mu.Lock()
	defer v.mu.Unlock()
	return !q.Bounds.From.Equal(v.from)
}

// subscribeMsg is what a client sends.
type subscribeMsg struct {
	Type  string            `json:"type"`
	View  map[string]string `json:"view"`
	Since *uint64           `json:"since"`
}

// ServeHTTP upgrades GET /v1/live to a websocket and serves one client
// from a goroutine of its own. It returns at once, and the client keeps
// only credentials(r), so that net/http's buffers of the connection and
// its response (about 10 KiB, kept for as long as anything reaches the
// response writer) are freed: at ten thousand clients they took the heap
// past the server's memory limit, and the collector ran without pause.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, out, err := upgradeSend(h.upgrader(), w, r)
	if err != nil {
		return // the upgrader has answered
	}
	go h.serve(conn, out, credentials(r))
}

// credentials returns r without its body, which the handlers' body limit
// wraps in a reader that holds the response writer: what a websocket
// client keeps of its request for checking its subscriptions.
func credentials(r *http.Request) *http.Request {
	c := r.WithContext(r.Context())
	c.Body, c.GetBody = http.NoBody, nil
	return c
}

// serve reads the subscriptions of one client until it goes. r is the
// request it was upgraded from, for its credentials.
func (h *Hub) serve(conn *websocket.Conn, out *sendConn, r *http.Request) {
	c := newClient(conn, out)
	id := h.nextID.Add(1)
	logger := h.logger.With("conn_id", id)
	h.clients.Inc()
	defer h.clients.Dec()
	defer c.close()
	// A display token sees only its view, and is cut off when revoked.
	inView, release := h.srv.displayLive(r, conn)
	defer release()

	conn.SetReadLimit(maxClientMessage)
	alive := keepAlive(conn)
	var current *view
	defer func() {
		if current != nil {
			current.unsubscribe(c)
		}
	}()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			logger.Debug("websocket closed", "err", err)
			return
		}
		alive()
		var msg subscribeMsg
		if err := json.Unmarshal(data, &msg); err != nil || msg.Type != "subscribe" {
			c.send(errorFrame(subscribeProblem(err), nil))
			continue
		}
		params := url.Values{}
		for k, val := range msg.View {
			params.Set(k, val)
		}
		if !inView(params) {
			c.send(errorFrame("this display token is bound to another view", nil))
			continue
		}
		if err := h.srv.scopeView(r, params); err != nil {
			c.send(errorFrame(err.Error(), nil))
			continue
		}
		v, errs := h.view(params)
		if len(errs) > 0 {
			c.send(errorFrame("the view is not valid", errs))
			continue
		}
		if current != nil {
			current.unsubscribe(c)
		}
		current = v
		v.subscribe(c, msg.Since)
	}
}

// subscribeProblem says what is wrong with a client's message that is not
// a subscribe, from the error of reading it (nil when it read but is of
// another type).
func subscribeProblem(err error) string {
	const want = `send {"type":"subscribe","view":{...},"since":SEQ}`
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "since":
		return "since must be a sequence number, a whole number of 0 or more: " + want
	case errors.As(err, &typeErr) && strings.HasPrefix(typeErr.Field, "view"):
		return "view must be an object of the report's query parameters as strings: " + want
	case errors.As(err, &typeErr) && typeErr.Field == "type":
		return "type must be a string: " + want
	case err != nil:
		return "not a JSON object: " + want
	}
	return want
}

// errorFrame tells a client what is wrong with what it sent; errors, one
// per field, only when there are any.
func errorFrame(detail string, errs []crmpulse.FieldError) []byte {
	msg := map[string]any{"type": "error", "detail": detail}
	if len(errs) > 0 {
		msg["errors"] = errs
	}
	data, _ := json.Marshal(msg)
	return prepare(data)
}

// client is one websocket connection. Frames are written by whoever sends
// them, or queued while the socket is full (see sendConn); a client that
// falls clientQueue frames behind is dropped with a resync message rather
// than holding up its view.
type client struct {
	conn      *websocket.Conn
	out       *sendConn // conn's network connection
	ping      *time.Timer
	closeOnce sync.Once
}

// newClient starts pinging conn every pingEvery, from a timer: a client
// has no goroutine of its own but the one that reads it.
func newClient(conn *websocket.Conn, out *sendConn) *client {
	c := &client{conn: conn, out: out}
	c.ping = time.AfterFunc(pingEvery, c.pingNow)
	return c
}

// send writes or queues msg, a frame built by prepare.
func (c *client) send(msg []byte) { c.out.send(msg) }

func (c *client) pingNow() {
	if c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) != nil {
		c.close()
		return
	}
	c.ping.Reset(pingEvery)
}

func (c *client) close() {
	c.closeOnce.Do(func() {
		c.ping.Stop()
		c.conn.Close()
	})
}
