package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
)

// node is a running process of the many-process shape.
type node struct {
	t    *testing.T
	name string
	args []string
	url  string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var nodeLine = regexp.MustCompile(`(?:open|listening on|metrics on) (https?://[^/\s]+)`)

// startNode runs `crmpulse args...` and waits for the line that says where
// it listens. It is stopped with SIGTERM at the end of the test.
func startNode(t *testing.T, name string, args ...string) *node {
	t.Helper()
	n := &node{t: t, name: name, args: args}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	t := n.t
	t.Helper()
	cmd := exec.Command(binary, n.args...)
	n.logs = &syncBuffer{}
	cmd.Stderr = n.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := nodeLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(n.done) }()
	select {
	case n.url = <-found:
	case <-n.done:
		t.Fatalf("%s exited before listening:\n%s", n.name, n.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start:\n%s", n.name, n.logs)
	}
}

func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (n *node) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		n.t.Errorf("%s did not stop on SIGTERM:\n%s", n.name, n.logs)
	}
	if n.t.Failed() && os.Getenv("CRMPULSE_CLUSTER_LOGS") != "" {
		n.t.Logf("%s logs:\n%s", n.name, n.logs)
	}
}

// startNATS runs a NATS server with JetStream on a free loopback port.
func startNATS(t *testing.T) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

// clusterReport is the part of a report the cluster test reads.
type clusterReport struct {
	Users []struct {
		ID     string                    `json:"id"`
		Counts map[string]map[string]int `json:"counts"`
	} `json:"users"`
	Totals            map[string]map[string]int `json:"totals"`
	Partial           bool                      `json:"partial"`
	MissingPartitions []string                  `json:"missing_partitions"`
}

func getReport(t *testing.T, base, query string) (clusterReport, error) {
	var r clusterReport
	resp, err := http.Get(base + "/v1/report?" + query)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	return r, json.Unmarshal(data, &r)
}

// figures flattens a report to "row entity figure" -> value.
func (r clusterReport) figures() map[string]int {
	out := map[string]int{}
	for _, u := range r.Users {
		for entity, f := range u.Counts {
			for k, v := range f {
				if v != 0 {
					out[u.ID+" "+entity+" "+k] = v
				}
			}
		}
	}
	for entity, f := range r.Totals {
		for k, v := range f {
			if v != 0 {
				out["totals "+entity+" "+k] = v
			}
		}
	}
	return out
}

// clusterEvent returns the i-th event of the test's stream: 500 users over
// three tenants, three entities, records touched several times each.
func clusterEvent(i int) map[string]any {
	entities := []string{"lead", "opportunity", "account"}
	action := "updated"
	if i%5 == 0 {
		action = "created"
	}
	at := time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i%(360*24)) * time.Hour)
	return map[string]any{
		"id": fmt.Sprintf("evt-%d", i), "tenant": fmt.Sprintf("t%d", i%3), "source": "api",
		"user": fmt.Sprintf("u-%d", i%500), "entity": entities[i%3],
		"record": fmt.Sprintf("rec-%d", i%20000), "action": action, "at": at.Format(time.RFC3339),
	}
}

// bruteForce counts the stream's events dated before `before` as the
// report must: per row (api:USER), entity and figure, and the totals.
func bruteForce(n int, before time.Time) map[string]int {
	out := map[string]int{}
	touched := map[string]bool{}
	for i := range n {
		e := clusterEvent(i)
		if at, _ := time.Parse(time.RFC3339, e["at"].(string)); !at.Before(before) {
			continue
		}
		row, entity := "api:"+e["user"].(string), e["entity"].(string)
		action := e["action"].(string)
		for _, prefix := range []string{row + " " + entity + " ", "totals " + entity + " "} {
			out[prefix+action]++
			out[prefix+"changes"]++
		}
		// records: distinct (tenant, record) per series, summed over series.
		key := e["tenant"].(string) + "\x00" + row + "\x00" + entity + "\x00" + e["record"].(string)
		if !touched[key] {
			touched[key] = true
			out[row+" "+entity+" records"]++
			out["totals "+entity+" records"]++
		}
	}
	return out
}

// post sends events [from, to) to the ingest node in batches, four at a
// time.
func post(t *testing.T, ingestURL string, from, to int) {
	t.Helper()
	const batch = 1000
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 4)
	for start := from; start < to; start += batch {
		events := make([]map[string]any, 0, batch)
		for i := start; i < min(start+batch, to); i++ {
			events = append(events, clusterEvent(i))
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := http.Post(ingestURL+"/v1/events", "application/json", bytes.NewReader(mustJSON(t, events)))
			if err == nil {
				if resp.StatusCode != http.StatusAccepted {
					err = fmt.Errorf("POST /v1/events: status %d", resp.StatusCode)
				}
				resp.Body.Close()
			}
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestClusterExactThroughWorkerCrash runs Kafka (kfake, 12 partitions),
// NATS, one ingest, three workers and two web nodes as processes, streams
// the events, SIGKILLs a worker half-way and restarts it later. Every
// report polled meanwhile is either marked partial or complete, none shows
// a figure above the final one, a report right after the kill is partial,
// and at the end both web nodes give the brute-force count. A websocket
// client on each web node sees the delta of an event posted to ingest.
//
// CRMPULSE_CLUSTER_EVENTS sets the number of events (default 200000,
// 50000 under -race) and CRMPULSE_CLUSTER_POLL_MS the time between two
// polls of each web node (default 250).
func TestClusterExactThroughWorkerCrash(t *testing.T) {
	defaultEvents := 200000
	if raceEnabled {
		defaultEvents = 50000 // kfake runs in the race-instrumented test process
	}
	total := envInt(t, "CRMPULSE_CLUSTER_EVENTS", defaultEvents)
	// Each poll is a year's report from every partition: O(events) work
	// in the workers, which share the test machine with everything else.
	pollEvery := time.Duration(envInt(t, "CRMPULSE_CLUSTER_POLL_MS", 250)) * time.Millisecond
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(12, "crmpulse-events"))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(kc.Close)
	brokers := strings.Join(kc.ListenAddrs(), ",")
	natsURL := startNATS(t)
	common := []string{"--kafka", brokers, "--nats", natsURL, "--log-level", "info"}

	ingest := startNode(t, "ingest", append([]string{"ingest", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, common...)...)
	var workers []*node
	for i := range 3 {
		workers = append(workers, startNode(t, fmt.Sprintf("worker-%d", i),
			append([]string{"worker", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--kafka-session-timeout", "6s"}, common...)...))
	}
	var webs []*node
	for i := range 2 {
		webs = append(webs, startNode(t, fmt.Sprintf("web-%d", i),
			append([]string{"web", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--query-timeout", "1s"}, common...)...))
	}
	waitWhole(t, webs, 60*time.Second)

	// A websocket client on each web node sees an event posted to ingest.
	liveDelta(t, ingest, webs)

	want := bruteForce(total, time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC))
	// Reports polled during the run cover January only: a year's report
	// from every partition is O(events) of work for the workers, which
	// share the machine with everything else of the test.
	january := "period=custom&from=2017-01-01T00:00:00Z&to=2017-02-01T00:00:00Z&tz=UTC"
	wantJanuary := bruteForce(total, time.Date(2017, 2, 1, 0, 0, 0, 0, time.UTC))

	// Poll both web nodes for the whole run.
	type polled struct {
		rep clusterReport
		at  time.Time
	}
	var (
		mu    sync.Mutex
		seen  []polled
		stopP = make(chan struct{})
		pollW sync.WaitGroup
	)
	for _, w := range webs {
		pollW.Go(func() {
			for {
				select {
				case <-stopP:
					return
				default:
				}
				time.Sleep(pollEvery)
				rep, err := getReport(t, w.url, january)
				if err != nil {
					continue
				}
				mu.Lock()
				seen = append(seen, polled{rep, time.Now()})
				mu.Unlock()
			}
		})
	}

	start := time.Now()
	post(t, ingest.url, 0, total/2)
	t.Logf("posted %d events in %s", total/2, time.Since(start).Round(time.Millisecond))

	// Kill a worker: until the group hands its partitions over, reports
	// must say they are partial.
	workers[1].kill()
	killed := time.Now()
	rep, err := getReport(t, webs[0].url, january)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Partial || len(rep.MissingPartitions) == 0 {
		t.Errorf("report right after a worker was killed: partial %v, missing %v; want partial with missing partitions",
			rep.Partial, rep.MissingPartitions)
	}
	post(t, ingest.url, total/2, total*3/4)
	// Restart it on its own data directory.
	workers[1].start()
	t.Logf("worker restarted %s after the kill", time.Since(killed).Round(time.Millisecond))
	post(t, ingest.url, total*3/4, total)
	t.Logf("posted %d events in %s", total, time.Since(start).Round(time.Millisecond))

	// Both web nodes reach the brute-force count.
	deadline := time.Now().Add(120 * time.Second)
	for _, w := range webs {
		for {
			rep, err := getReport(t, w.url, year2017)
			if err == nil && !rep.Partial && equalFigures(rep.figures(), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never gave the brute-force count: err %v, partial %v, %s",
					w.name, err, rep.Partial, diffFigures(rep.figures(), want))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("both web nodes exact %s after the start", time.Since(start).Round(time.Millisecond))
	close(stopP)
	pollW.Wait()

	var partial int
	for _, p := range seen {
		if p.rep.Partial != (len(p.rep.MissingPartitions) > 0) {
			t.Errorf("report at %s: partial %v but missing %v", p.at, p.rep.Partial, p.rep.MissingPartitions)
		}
		if p.rep.Partial {
			partial++
		}
		for k, v := range p.rep.figures() {
			if v > wantJanuary[k] {
				t.Errorf("report at %s (partial %v): %s = %d, above the final %d", p.at.Format(time.StampMilli), p.rep.Partial, k, v, wantJanuary[k])
				break
			}
		}
	}
	t.Logf("%d reports polled during the run, %d partial", len(seen), partial)
	if partial == 0 {
		t.Error("no report was partial although a worker was killed")
	}
}

// waitWhole waits until every web node answers with no partition missing.
func waitWhole(t *testing.T, webs []*node, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, w := range webs {
		for {
			rep, err := getReport(t, w.url, "period=today")
			if err == nil && !rep.Partial {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: partitions still missing: %v %v", w.name, err, rep.MissingPartitions)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// liveDelta subscribes a websocket client on each web node, posts one
// event to the ingest node, and checks that each client gets its delta.
func liveDelta(t *testing.T, ingest *node, webs []*node) {
	t.Helper()
	var conns []*websocket.Conn
	for _, w := range webs {
		conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.url, "http")+"/v1/live", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if err := conn.WriteJSON(map[string]any{"type": "subscribe", "view": map[string]string{"period": "today", "tz": "UTC"}}); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, conn); f.Type != "snapshot" {
			t.Fatalf("%s: first frame %q, want snapshot", w.name, f.Type)
		}
		conns = append(conns, conn)
	}
	event := map[string]any{"id": "evt-live-cluster", "user": "u-live", "entity": "opportunity",
		"record": "OPP-LIVE", "action": "updated", "at": time.Now().UTC().Format(time.RFC3339Nano)}
	resp, err := http.Post(ingest.url+"/v1/events", "application/json", bytes.NewReader(mustJSON(t, []any{event})))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events to ingest: %d", resp.StatusCode)
	}
	for i, conn := range conns {
		for {
			f := readFrame(t, conn)
			if f.Type != "delta" {
				continue
			}
			if len(f.Transactions) != 1 || f.Transactions[0].Record != "OPP-LIVE" {
				t.Errorf("%s: delta transactions = %+v, want OPP-LIVE", webs[i].name, f.Transactions)
			}
			break
		}
		conn.Close() // its view would be recomputed at every delta
	}
}

func equalFigures(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// diffFigures names a few differences.
func diffFigures(got, want map[string]int) string {
	var out []string
	for k, v := range want {
		if got[k] != v && len(out) < 5 {
			out = append(out, fmt.Sprintf("%s = %d, want %d", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && len(out) < 10 {
			out = append(out, fmt.Sprintf("%s = %d, want none", k, v))
		}
	}
	return fmt.Sprintf("%d figures, want %d: %s", len(got), len(want), strings.Join(out, "; "))
}
