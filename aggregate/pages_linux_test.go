package aggregate

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmpulse/crmpulse"
)

// TestReleasePagesEmptiesBadgersMappings applies events, so that the
// memtable's log holds written pages, and checks that ReleasePages takes
// every page of Badger's mapped files out of the resident set.
func TestReleasePagesEmptiesBadgersMappings(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := openStore(t, dir)
	defer closeStore()
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for b := range 20 {
		var batch []crmpulse.Record
		for i := range 1000 {
			n := b*1000 + i
			e := ev(fmt.Sprintf("u%d", n%50), fmt.Sprintf("r%d", n), crmpulse.Created, start.Add(time.Duration(n)*time.Second).Format(time.RFC3339))
			batch = append(batch, crmpulse.Record{Partition: 0, Offset: int64(n), Event: e})
		}
		if _, err := s.Apply(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if rss := mappedRSS(t, dir); rss == 0 {
		t.Fatal("no resident pages of Badger's files after 20,000 events: the test shows nothing")
	}
	if n := s.ReleasePages(); n == 0 {
		t.Error("ReleasePages covered no mappings")
	}
	if rss := mappedRSS(t, dir); rss != 0 {
		t.Errorf("%d kB of Badger's files still resident after ReleasePages", rss)
	}
}

// mappedRSS sums the resident kB of this process's mappings of Badger's
// files in dir, from /proc/self/smaps.
func mappedRSS(t *testing.T, dir string) int {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, inDir := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			// A mapping's first line: address range, perms, offset,
			// device, inode and, for a file, its path.
			inDir = len(fields) == 6 && filepath.Dir(fields[5]) == dir && badgerFile(fields[5])
		case len(fields) == 3 && fields[0] == "Rss:" && inDir:
			kb, _ := strconv.Atoi(fields[1])
			total += kb
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
