package web

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
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
	// clientQueue is how many frames a client may lag before it is dropped
	// with a resync message.
	clientQueue = 256
	// viewIdle is how long a view without clients is kept for resumes.
	viewIdle = 5 * time.Minute
	// pingEvery is how often a quiet connection is pinged; writeWait bounds
	// each write, so a stalled client is cut off rather than waited for.
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
	msg *websocket.PreparedMessage
}

// resyncMsg tells a client to subscribe again without since.
var resyncMsg = prepare([]byte(`{"type":"resync"}`))

// prepare builds the websocket frame of an encoded message once, so that
// sending it to many clients costs each of them a write and no copy.
// Building an uncompressed frame only writes to memory and cannot fail;
// the upgrader negotiates no compression, so the frame is the one written.
func prepare(data []byte) *websocket.PreparedMessage {
	msg, _ := websocket.NewPreparedMessage(websocket.TextMessage, data)
	return msg
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
	q := v.query()
	srv := v.hub.srv
	v.mu.Lock()
	defer v.mu.Unlock()
	v.timer = nil
	if len(v.pending) == 0 {
		return
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
		return
	}
	msg := prepare(data)
	v.ring = append(v.ring, frame{v.seq, msg})
	if len(v.ring) > ringSize {
		v.ring = slices.Delete(v.ring, 0, len(v.ring)-ringSize)
	}
	v.lastFrame = time.Now()
	for c := range v.clients {
		c.send(msg)
	}
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
	v.mu.Lock()
	defer v.mu.Unlock()
	v.from = v.query().Bounds.From
	msg := prepare(v.snapshot())
	for c := range v.clients {
		c.send(msg)
	}
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

// ServeHTTP upgrades GET /v1/live to a websocket and serves one client.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, batch, err := upgradeBatched(h.upgrader(), w, r)
	if err != nil {
		return // the upgrader has answered
	}
	c := newClient(conn, batch)
	id := h.nextID.Add(1)
	logger := h.logger.With("conn_id", id)
	h.clients.Inc()
	defer h.clients.Dec()
	go c.write()
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
			c.send(errorFrame("send {\"type\":\"subscribe\",\"view\":{...}}", nil))
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

func errorFrame(detail string, errs []crmpulse.FieldError) *websocket.PreparedMessage {
	data, _ := json.Marshal(map[string]any{"type": "error", "detail": detail, "errors": errs})
	return prepare(data)
}

// client is one websocket connection. Frames go through a bounded queue; a
// client that falls behind is dropped with a resync message rather than
// holding up its view.
type client struct {
	conn      *websocket.Conn
	batch     *batchConn // conn's network connection
	out       chan *websocket.PreparedMessage
	dropped   chan struct{}
	dropOnce  sync.Once
	closeOnce sync.Once
}

func newClient(conn *websocket.Conn, batch *batchConn) *client {
	return &client{conn: conn, batch: batch, out: make(chan *websocket.PreparedMessage, clientQueue),
		dropped: make(chan struct{})}
}

func (c *client) send(msg *websocket.PreparedMessage) {
	select {
	case c.out <- msg:
	default:
		c.dropOnce.Do(func() { close(c.dropped) })
	}
}

func (c *client) write() {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case msg := <-c.out:
			if err := c.writeQueued(msg); err != nil {
				c.close()
				return
			}
		case <-c.dropped:
			c.conn.SetWriteDeadline(time.Now().Add(resyncWait))
			c.conn.WritePreparedMessage(resyncMsg)
			c.close()
			return
		case <-ping.C:
			if c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) != nil {
				c.close()
				return
			}
		}
	}
}

// writeQueued writes msg and the frames queued behind it as one batch: a
// client that has fallen behind costs one write deadline and one system
// call for all it missed, rather than one for each frame.
func (c *client) writeQueued(msg *websocket.PreparedMessage) error {
	c.batch.hold()
	c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	err := c.conn.WritePreparedMessage(msg)
	// Only this goroutine receives from out, so what it holds now is there.
	for n := len(c.out); n > 0 && err == nil; n-- {
		err = c.conn.WritePreparedMessage(<-c.out)
	}
	if ferr := c.batch.flush(); err == nil {
		err = ferr
	}
	return err
}

func (c *client) close() {
	c.closeOnce.Do(func() {
		c.dropOnce.Do(func() { close(c.dropped) })
		c.conn.Close()
	})
}
