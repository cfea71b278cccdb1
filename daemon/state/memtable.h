#pragma once
// The state store's RocksDB memtable: entries are appended on write (no ordered insert on the
// checkpoint thread, as with RocksDB's VectorRep) and sorted once, when the memtable is flushed
// or first read, by a string sort that keeps each key's leading bytes in the array it sorts.
//
// Why: a checkpoint rewrites most groups every interval, so one 16 MB memtable holds some
// 100 000 entries whose keys share prefixes ("g/\x02<rule id, 8 bytes><group key>").
// VectorRep sorts them with std::sort through the memtable's comparator: about 17 comparisons
// per entry, each reading two keys scattered over the memtable's arena (cache misses). With the
// 200-rule bench set that sort was 8 % of the daemon's CPU samples (bench/PROFILE.md). The sort
// here reads each key once per 32 bytes of depth that tell it apart (most keys: once) and
// compares the copied bytes in one contiguous array.
//
// Requires the default bytewise order of user keys (the state store's): copied bytes decide
// where they differ. Keys equal through every copied byte that end there (one user key written
// at several sequence numbers) are ordered by the memtable's own comparator.
//
// Thread safety: RocksDB writes a memtable from one thread at a time (allow_concurrent_memtable_
// write = false); reads may come from other threads. A mutex guards the entries. A memtable
// still being written is read from a sorted copy, kept until the next insert (vigie reads only
// at start-up: the scan and the seq keys); a read-only one (being flushed) is sorted once, in
// place, and shared by its readers. With a prefix extractor the factory hands out RocksDB's own
// VectorRep instead (see GetDynamicPrefixIterator in memtable.cc).
#include <memory>
#include <vector>

#include <rocksdb/memtablerep.h>

namespace vigie::daemon {

// For Options::memtable_factory. Name(): "VigieSortOnceMemTable".
std::shared_ptr<rocksdb::MemTableRepFactory> NewSortOnceMemTableFactory();

// The sort itself, for tests: orders memtable entries (varint32-length-prefixed internal keys:
// user key then an 8-byte sequence/type trailer) as `cmp` does, given that `cmp` orders user
// keys bytewise.
void SortMemTableEntries(std::vector<const char*>* entries,
                         const rocksdb::MemTableRep::KeyComparator& cmp);

}  // namespace vigie::daemon
