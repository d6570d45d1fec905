package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// startTLSServer runs `crmpulse serve` that is expected to serve HTTPS,
// reached with client (which must trust the server's certificate and is
// used by the helpers, /readyz included).
func startTLSServer(t *testing.T, client *http.Client, args []string, env ...string) *server {
	t.Helper()
	s := &server{t: t, data: t.TempDir(), env: env, args: args, client: client}
	s.start()
	t.Cleanup(s.stop)
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("serve printed %s, want an https:// address", s.url)
	}
	return s
}

// tlsClient returns a client that trusts roots only, follows no redirect
// and keeps no cookies.
func tlsClient(roots *x509.CertPool, serverName string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// testCA makes a certificate authority and a server certificate it signed
// for 127.0.0.1 and localhost, writes the server's certificate and key as
// PEM files, and returns a pool holding the authority alone.
func testCA(t *testing.T) (roots *x509.CertPool, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crmpulse test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return roots, certFile, keyFile
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// signInConfig writes a configuration file with one administrator who
// signs in with password, plus extra YAML, and returns its path.
func signInConfig(t *testing.T, password, extra string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("auth:\n  users:\n    - {name: root, password_hash: %q, role: admin}\n%s", hash, extra)
	path := filepath.Join(t.TempDir(), "crmpulse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSFromCertificateFiles serves HTTPS from PEM files signed by a CA
// the test makes: the address printed is https, the API answers over TLS,
// HSTS is sent, the session cookie is Secure, and a client that does not
// trust the CA cannot connect.
func TestTLSFromCertificateFiles(t *testing.T) {
	roots, certFile, keyFile := testCA(t)
	client := tlsClient(roots, "")
	s := startTLSServer(t, client, []string{"--config", signInConfig(t, rootPass, "")},
		"CRMPULSE_TLS_CERT="+certFile, "CRMPULSE_TLS_KEY="+keyFile, "CRMPULSE_ADMIN_TOKEN="+adminToken)

	var rep report
	if code := s.do("GET", "/v1/report?"+period(), adminToken, nil, &rep); code != http.StatusOK {
		t.Fatalf("GET /v1/report over TLS: status %d", code)
	}
	resp, err := client.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("healthz was not answered over TLS 1.2 or later: %+v", resp.TLS)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("Strict-Transport-Security %q, want a max-age", hsts)
	}

	resp, err = client.PostForm(s.url+"/signin", url.Values{"name": {"root"}, "password": {rootPass}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "crmpulse_session" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil {
		t.Fatalf("sign in over TLS: status %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if !session.Secure || !session.HttpOnly {
		t.Errorf("session cookie Secure %v HttpOnly %v, want both", session.Secure, session.HttpOnly)
	}
	req, _ := http.NewRequest("GET", s.url+"/v1/report?"+period(), nil)
	req.AddCookie(session)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("report with the session over TLS: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	if _, err := tlsClient(x509.NewCertPool(), "").Get(s.url + "/healthz"); err == nil {
		t.Error("a client that does not trust the test CA connected")
	}
}
