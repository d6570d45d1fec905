package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestKcatProducerIsCounted writes an event to the topic with kcat, a real
// outside Kafka client, as another producer would (CloudEvents in binary
// mode with ce_ headers), and finds it in the server's report.
func TestKcatProducerIsCounted(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		requireCI(t, "kcat is not installed: apt-get install kcat")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := strings.Join(c.ListenAddrs(), ",")
	s := startServerWith(t, "", []string{"--kafka", brokers})

	at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	value := `{"user":"u-kcat","entity":"contact","record":"C-9","action":"updated","fields":["phone"],"at":"` + at + `"}`
	cmd := exec.Command(kcat, "-P", "-b", brokers, "-t", "crmpulse-events",
		"-X", "partitioner=murmur2_random", "-K", "\t",
		"-H", "ce_specversion=1.0", "-H", "ce_id=kcat-1", "-H", "ce_source=/crmpulse/pipedrive/acme",
		"-H", "ce_type=crmpulse.activity", "-H", "ce_time="+at, "-H", "content-type=application/json")
	// The key (tenant, source and user, NUL between them) and the value are
	// read from stdin, separated by a tab.
	cmd.Stdin = strings.NewReader("acme\x00pipedrive\x00u-kcat\t" + value + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}

	deadline := time.Now().Add(time.Minute)
	for {
		r := s.report("period=today&tenant=acme")
		for _, u := range r.Users {
			if u.ID == "pipedrive:u-kcat" && u.Counts["contact"]["updated"] == 1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kcat event was not counted; report rows: %+v\n%s", r.Users, s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
