package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Profile is a CPU profile of the server taken while a figure ran.
type Profile struct {
	Figure string
	Path   string
	Top    string // `go tool pprof -top` of it, cut to its first entries
}

// Profiler takes CPU profiles of servers into a folder and keeps their
// summaries for the closing report.
type Profiler struct {
	Enabled  bool
	Dir      string
	Profiles []Profile
}

// During starts a CPU profile of s lasting d and returns a function that
// waits for it and records its top entries under figure. A failure to
// profile is noted, never fatal to the figure.
func (p *Profiler) During(ctx context.Context, s *Server, figure string, d time.Duration) (wait func()) {
	if !p.Enabled || d < time.Second {
		return func() {}
	}
	name := strings.NewReplacer(" ", "-", "/", "-").Replace(figure) + ".pprof"
	path := filepath.Join(p.Dir, name)
	done := make(chan error, 1)
	go func() { done <- fetchProfile(ctx, s.Pprof, path, d) }()
	return func() {
		if err := <-done; err != nil {
			p.Profiles = append(p.Profiles, Profile{Figure: figure, Top: "profile failed: " + err.Error()})
			return
		}
		p.Profiles = append(p.Profiles, Profile{Figure: figure, Path: path, Top: top(s.Bin, path)})
	}
}

// Heap records the server's live heap now under figure, to show where
// resident memory goes.
func (p *Profiler) Heap(ctx context.Context, s *Server, figure string) {
	if !p.Enabled {
		return
	}
	path := filepath.Join(p.Dir, "heap.pprof")
	if err := fetch(ctx, s.Pprof+"/debug/pprof/heap?gc=1", path, time.Minute); err != nil {
		p.Profiles = append(p.Profiles, Profile{Figure: figure, Top: "heap profile failed: " + err.Error()})
		return
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=20", s.Bin, path).CombinedOutput()
	if err != nil {
		out = []byte("pprof -top failed: " + err.Error())
	}
	p.Profiles = append(p.Profiles, Profile{Figure: figure, Path: path, Top: string(out)})
}

func fetchProfile(ctx context.Context, base, path string, d time.Duration) error {
	secs := max(int(d/time.Second), 1)
	return fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), path, d+30*time.Second)
}

// fetch saves what url answers into path.
func fetch(ctx context.Context, url, path string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// top summarises a profile by cumulative time, which shows the call paths
// the time goes down; the flat view is one `go tool pprof -top` away.
func top(bin, path string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", bin, path).CombinedOutput()
	if err != nil {
		return "pprof -top failed: " + err.Error()
	}
	return string(out)
}
