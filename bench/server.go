package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hubspotSecret signs the benchmark's HubSpot deliveries.
const hubspotSecret = "bench-hubspot-client-secret"

// Build compiles ./cmd/crmpulse from the module root into dir.
func Build(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "crmpulse")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/crmpulse")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build crmpulse: %w", err)
	}
	return bin, nil
}

// Server is a running `crmpulse serve` on loopback.
type Server struct {
	URL   string
	Pprof string // pprof base URL, empty when not started
	Bin   string
	Data  string
	cmd   *exec.Cmd
	done  chan struct{}
	logs  string
}

var urlLine = regexp.MustCompile(`open (http://\S+)/ in a browser`)

// StartServer runs `crmpulse serve` on a new data directory under work and
// waits until /readyz answers 200. Its log goes to a file beside the data.
func StartServer(ctx context.Context, bin, work, name string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pprofPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Bin: bin, Data: filepath.Join(work, name), done: make(chan struct{}),
		URL:   fmt.Sprintf("http://127.0.0.1:%d", port),
		Pprof: fmt.Sprintf("http://127.0.0.1:%d", pprofPort),
		logs:  filepath.Join(work, name+".log")}
	logs, err := os.Create(s.logs)
	if err != nil {
		return nil, err
	}
	defer logs.Close()
	s.cmd = exec.Command(bin, "serve", "--data", s.Data, "--addr", strings.TrimPrefix(s.URL, "http://"))
	s.cmd.Env = append(os.Environ(), "CRMPULSE_HUBSPOT_SECRET="+hubspotSecret,
		"CRMPULSE_PUBLIC_URL="+s.URL, "CRMPULSE_PPROF_ADDR="+strings.TrimPrefix(s.Pprof, "http://"),
		// Every sender is on one loopback address, where HubSpot sends
		// from many: the per-address limit would measure itself.
		"CRMPULSE_LIMITS_HOOK_RPS=0")
	s.cmd.Stderr = logs
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start crmpulse serve: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if urlLine.MatchString(sc.Text()) {
				close(listening)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-listening:
	case <-s.done:
		return nil, fmt.Errorf("crmpulse serve exited before listening; see %s", s.logs)
	case <-time.After(time.Minute):
		s.Stop()
		return nil, fmt.Errorf("crmpulse serve did not listen within a minute; see %s", s.logs)
	}
	if _, err := s.WaitReady(ctx, 2*time.Minute); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// WaitReady polls /readyz until it answers 200 (the workers have applied
// everything the log holds) and returns how long that took.
func (s *Server) WaitReady(ctx context.Context, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	client := &http.Client{Timeout: 5 * time.Second}
	for time.Since(start) < limit {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("crmpulse not ready after %s; see %s", limit, s.logs)
}

// Memory is the server's resident memory and its peak, from /proc, and
// the resident memory split into anonymous (the Go heap and runtime) and
// file pages (mapped files: Badger's tables and memtables, JetStream's).
type Memory struct{ RSS, Peak, Anon, File int64 }

// Memory reads VmRSS, VmHWM, RssAnon and RssFile of the server process.
func (s *Server) Memory() (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for line := range strings.SplitSeq(string(data), "\n") {
		name, value, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			m.RSS = kb << 10
		case "VmHWM":
			m.Peak = kb << 10
		case "RssAnon":
			m.Anon = kb << 10
		case "RssFile":
			m.File = kb << 10
		}
	}
	return m, nil
}

// CPU returns the CPU time the server has used so far, user and system,
// from /proc/PID/stat.
func (s *Server) CPU() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	_, rest, _ := strings.Cut(string(data), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", s.cmd.Process.Pid, len(fields))
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	// Clock ticks are 1/100 s on Linux (USER_HZ).
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// Stop ends the server with SIGTERM, and SIGKILL after 30 s.
func (s *Server) Stop() {
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
	}
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server does; the server then fails to start, loudly.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// mib formats bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
