package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// pebbleModule is the ACME test server the ACME test runs, fetched and
// built through the Go module proxy (not a dependency of crmpulse).
const pebbleModule = "github.com/letsencrypt/pebble/v2@v2.10.3"

var pebbleBuild struct {
	once     sync.Once
	bin, dir string
	failure  string
}

// pebble builds Pebble's cmd/pebble once and returns the binary and the
// module's directory, which holds its test certificates.
func pebble(t *testing.T) (bin, dir string) {
	t.Helper()
	b := &pebbleBuild
	b.once.Do(func() {
		var out bytes.Buffer
		download := exec.Command("go", "mod", "download", "-json", pebbleModule)
		download.Dir, download.Stdout, download.Stderr = os.TempDir(), &out, &out
		download.Env = append(os.Environ(), "GOFLAGS=")
		if err := download.Run(); err != nil {
			b.failure = fmt.Sprintf("go mod download %s failed (is the Go module proxy reachable?): %v\n%s", pebbleModule, err, out.Bytes())
			return
		}
		var mod struct{ Dir string }
		if err := json.Unmarshal(out.Bytes(), &mod); err != nil || mod.Dir == "" {
			b.failure = fmt.Sprintf("go mod download %s gave no directory: %s", pebbleModule, out.Bytes())
			return
		}
		gobin := filepath.Join(filepath.Dir(binary), "pebble-bin")
		install := exec.Command("go", "install", strings.Replace(pebbleModule, "@", "/cmd/pebble@", 1))
		install.Dir = os.TempDir()
		install.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
		if logs, err := install.CombinedOutput(); err != nil {
			b.failure = fmt.Sprintf("go install %s/cmd/pebble failed: %v\n%s", pebbleModule, err, logs)
			return
		}
		b.bin, b.dir = filepath.Join(gobin, "pebble"), mod.Dir
	})
	if b.failure != "" {
		requireCI(t, "Pebble cannot run here: %s", b.failure)
	}
	return b.bin, b.dir
}

// startPebble runs Pebble on two free 127.0.0.1 ports with validation
// skipped (PEBBLE_VA_ALWAYS_VALID) and no bad-nonce rejections, and returns
// its directory URL, the file of the CA its own server certificate is
// signed by, and a pool holding the root it issues certificates under.
func startPebble(t *testing.T) (directory, serverCA string, issuingRoot *x509.CertPool) {
	t.Helper()
	bin, dir := pebble(t)
	serverCA = filepath.Join(dir, "test", "certs", "pebble.minica.pem")
	listen, manage := freeAddr(t), freeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": manage,
		"certificate": filepath.Join(dir, "test", "certs", "localhost", "cert.pem"),
		"privateKey":  filepath.Join(dir, "test", "certs", "localhost", "key.pem"),
		"httpPort":    5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": map[string]int{"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 86400}},
	}}
	path := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(path, mustJSON(t, cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", path)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })

	pem, err := os.ReadFile(serverCA)
	if err != nil {
		t.Fatal(err)
	}
	pebbleCA := x509.NewCertPool()
	pebbleCA.AppendCertsFromPEM(pem)
	client := tlsClient(pebbleCA, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("https://" + manage + "/roots/0")
		if err == nil {
			root, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			issuingRoot = x509.NewCertPool()
			if resp.StatusCode == http.StatusOK && issuingRoot.AppendCertsFromPEM(root) {
				return "https://" + listen + "/dir", serverCA, issuingRoot
			}
		}
		select {
		case <-done:
			t.Fatalf("pebble exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not serve its root: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestACMECertificateFromPebble gets crmpulse's certificate from a local
// ACME CA (Pebble) through autocert, answered on crmpulse's own port with
// TLS-ALPN-01, for a name that only the client maps to 127.0.0.1; a client
// trusting Pebble's issuing root completes the handshake and uses the API.
func TestACMECertificateFromPebble(t *testing.T) {
	const domain = "crmpulse.test"
	directory, serverCA, root := startPebble(t)
	client := tlsClient(root, domain)
	s := startTLSServer(t, client, nil, "CRMPULSE_ADMIN_TOKEN="+adminToken,
		"CRMPULSE_ACME_DOMAINS="+domain, "CRMPULSE_ACME_DIRECTORY="+directory, "CRMPULSE_ACME_CA="+serverCA)

	resp, err := client.Get(s.url + "/healthz")
	if err != nil {
		t.Fatalf("TLS handshake with the ACME certificate: %v\n%s", err, s.logs)
	}
	resp.Body.Close()
	leaf := resp.TLS.PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, domain) || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Errorf("certificate for %v issued by %q, want %s from Pebble", leaf.DNSNames, leaf.Issuer.CommonName, domain)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts == "" {
		t.Error("no Strict-Transport-Security under ACME")
	}
	if code := s.do("GET", "/v1/report?"+period(), adminToken, nil, nil); code != http.StatusOK {
		t.Errorf("GET /v1/report over the ACME certificate: status %d", code)
	}
	cached, _ := filepath.Glob(filepath.Join(s.data, "acme", domain+"*"))
	if len(cached) == 0 {
		t.Error("the certificate was not kept in DATA/acme")
	}
	if _, err := tlsClient(x509.NewCertPool(), domain).Get(s.url + "/healthz"); err == nil {
		t.Error("a client that does not trust Pebble's root connected")
	}
}
