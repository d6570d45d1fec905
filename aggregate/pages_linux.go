package aggregate

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dropTablePages takes the pages of the Badger tables and memtable logs in
// dir that the process has mapped out of its resident set, and returns
// how many bytes of mappings it asked for. Open reads every table once to
// rebuild the columns, compactions read and write whole tables, and each
// memtable's log is written once and read only after a crash; reports
// never read any of them, so those pages would otherwise stay in the
// process's RSS (about 150 MiB at 10M events) until the kernel wanted
// them back. They stay in the page cache: a later read maps them again
// without touching the disk, and written pages are still written back.
// madvise with MADV_DONTNEED on a shared file mapping changes nothing but
// residency.
func dropTablePages(dir string) int {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return 0
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return 0
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	dropped := 0
	for line := range strings.Lines(string(maps)) {
		// address perms offset dev inode path
		fields := strings.Fields(line)
		if len(fields) != 6 || filepath.Dir(fields[5]) != dir || !badgerFile(fields[5]) {
			continue
		}
		from, to, _ := strings.Cut(fields[0], "-")
		lo, err1 := strconv.ParseUint(from, 16, 64)
		hi, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || hi <= lo {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), syscall.MADV_DONTNEED); errno == 0 {
			dropped += int(hi - lo)
		}
	}
	return dropped
}

// badgerFile says whether path is one of the files Badger maps: a table
// or a memtable's log.
func badgerFile(path string) bool {
	return strings.HasSuffix(path, ".sst") || strings.HasSuffix(path, ".mem")
}
