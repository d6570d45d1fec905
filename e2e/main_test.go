// Package e2e runs the real crmpulse binary the way users do: started from
// the command line on a data directory, fed over HTTP and through the
// import commands, killed and restarted, and read back through the API.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// binary is the crmpulse binary built once for the package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crmpulse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "crmpulse")
	build := exec.Command("go", "build", "-o", binary, "../cmd/crmpulse")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build crmpulse:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireCI fails under CI=true, where every suite must run, and skips
// elsewhere with how to make the test run.
func requireCI(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal("required under CI=true: " + msg)
	}
	t.Skip(msg)
}

// sampleData returns the public data set's folder.
func sampleData(t *testing.T) string {
	t.Helper()
	root := os.Getenv("CRMPULSE_SAMPLE_DATA")
	dir := filepath.Join(root, "crm-sales-opportunities")
	if root == "" {
		requireCI(t, "CRMPULSE_SAMPLE_DATA is not set: run the tests with `make test`, which points it at ../shared/data, or set it to the folder holding crm-sales-opportunities/")
	}
	if _, err := os.Stat(filepath.Join(dir, "sales_pipeline.csv")); err != nil {
		requireCI(t, "the sample data set is not at %s: set CRMPULSE_SAMPLE_DATA to the folder holding crm-sales-opportunities/", dir)
	}
	return dir
}

// server is a running crmpulse serve process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	data string
	env  []string
	args []string
	logs *bytes.Buffer
	done chan struct{}
	// client makes the helpers' requests; nil means http.DefaultClient.
	// A server over TLS sets one that trusts its certificate.
	client *http.Client
}

var urlLine = regexp.MustCompile(`open (https?://\S+)/ in a browser`)

// httpClient returns the client that reaches the server.
func (s *server) httpClient() *http.Client {
	if s.client != nil {
		return s.client
	}
	return http.DefaultClient
}

// startServer runs `crmpulse serve` on data (a new temp dir when empty)
// with extra environment, and waits until it is ready.
func startServer(t *testing.T, data string, env ...string) *server {
	t.Helper()
	return startServerWith(t, data, nil, env...)
}

// startServerWith is startServer with extra serve flags.
func startServerWith(t *testing.T, data string, args []string, env ...string) *server {
	t.Helper()
	if data == "" {
		data = t.TempDir()
	}
	s := &server{t: t, data: data, env: env, args: args}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--data", s.data, "--addr", "127.0.0.1:0"}, s.args...)...)
	cmd.Env = append(os.Environ(), s.env...)
	s.logs = &bytes.Buffer{}
	cmd.Stderr = s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	select {
	case s.url = <-found:
	case <-s.done:
		t.Fatalf("crmpulse serve exited before listening:\n%s", s.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("crmpulse serve did not start:\n%s", s.logs)
	}
	s.waitReady()
}

// waitReady polls /readyz until the workers have caught up with the log.
func (s *server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := s.httpClient().Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("crmpulse did not become ready:\n%s", s.logs)
}

// kill ends the server with SIGKILL, as a crash would.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("crmpulse did not stop on SIGTERM:\n%s", s.logs)
	}
}

// crmpulse runs a client subcommand against the server and returns its
// output and exit code.
func (s *server) crmpulse(args ...string) (string, string, int) {
	s.t.Helper()
	cmd := exec.Command(binary, append(args, "--server", s.url)...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Dir = ".."
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// do sends a request and decodes a JSON answer into v (when not nil).
func (s *server) do(method, path, token string, body []byte, v any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.httpClient().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil && len(data) > 0 {
		if err := json.Unmarshal(data, v); err != nil {
			s.t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// report is the part of GET /v1/report the tests read.
type report struct {
	Users []struct {
		ID     string                    `json:"id"`
		Name   *string                   `json:"name"`
		Status string                    `json:"status"`
		Counts map[string]map[string]int `json:"counts"`
		Total  map[string]int            `json:"total"`
	} `json:"users"`
	Totals map[string]map[string]int `json:"totals"`
}

func (s *server) report(query string) report {
	s.t.Helper()
	var r report
	if code := s.do("GET", "/v1/report?"+query, "", nil, &r); code != http.StatusOK {
		s.t.Fatalf("GET /v1/report?%s: status %d", query, code)
	}
	return r
}

// figures flattens a report to "user entity figure" -> value, with the
// zeros of entities a row leaves out.
func (r report) figures(entity string) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, u := range r.Users {
		f := map[string]int{"created": 0, "updated": 0, "records": 0}
		for k, v := range u.Counts[entity] {
			f[k] = v
		}
		out[u.ID] = f
	}
	return out
}

// readCSV returns the data rows (header dropped) of a CSV of the data set.
func readCSV(t *testing.T, dir, name string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows[1:]
}

func repoFile(parts ...string) string {
	return filepath.Join(append([]string{".."}, parts...)...)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
