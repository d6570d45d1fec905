package aggregate

import "github.com/dgraph-io/badger/v4"

// BadgerOptions returns the options of the state's Badger database in dir,
// sized for a small machine: the report columns live in the Go heap, so
// Badger keeps small memtables and caches rather than its defaults (five
// 64 MiB memtables, a 256 MiB block cache, every table index in memory).
// Every process that opens the state uses these.
func BadgerOptions(dir string) badger.Options {
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		// A transaction may hold 15% of a memtable: 2.4 MiB, several
		// times an Apply transaction of maxTxnRecords events.
		WithMemTableSize(16 << 20).
		WithNumMemtables(3).
		WithBlockCacheSize(32 << 20).
		// Table indexes and bloom filters are cached, not all held.
		WithIndexCacheSize(32 << 20).
		WithNumCompactors(2)
	// Every level's tables stay at the base size (2 MiB). By default each
	// level's are twice the size of the level above's, so a compaction of
	// the deepest levels of a large state built tables of tens of MiB in
	// the heap: 112 MB of the server's 213 MB while it took a load.
	opts.TableSizeMultiplier = 1
	return opts
}
