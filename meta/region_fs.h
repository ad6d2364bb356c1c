// RegionFs: a small filesystem in the metadata region of a self-contained array, made to hold
// one RocksDB database (region_rocksdb.h adapts it to rocksdb::FileSystem). The way Ceph's
// BlueFS holds BlueStore's RocksDB on the raw device, scaled down to what RocksDB asks of a
// filesystem: a flat directory of append-only files.
//
// What is where: the first blocks of the region hold the journal (region_journal.h), which says
// which files exist, under which names, in which extents of blocks, and how long they are known
// to be; it is replayed at open. Every other block is a file's: a header saying whose it is,
// then up to 4064 bytes of the file (region_block.h). Every block is kept in the device's copies
// (m+1 members).
//
// Durability, and what each step costs:
// - Writer::append writes each block as it fills; flush() writes the partial last block too (it
//   is rewritten in place as the file grows: a copy that missed a rewrite is only shorter, and a
//   read that needs more of it takes another copy). Written blocks survive a crash of the process.
// - Writer::sync() makes the file's blocks, and every journal record written so far, durable:
//   one device flush. The journal needs a write only when the file takes a new extent.
// - The journal records a file's size only once its blocks have been flushed (a lower bound); at
//   open, the blocks after that size are probed: each whose header names the file, its extent's
//   allocation number and the next index lengthens the file. So a synced append is its blocks and
//   a flush, and a crash leaves each file some prefix of what was written to it.
// - Space given back (a file removed or trimmed) is reused only once the journal record that
//   freed it is durable, so no replay can find two owners for a block.
// - Namespace changes (create, rename, remove) write their journal records at once;
//   sync_namespace() (RocksDB's directory fsync) makes them durable. A rename over a file
//   removes it in the same batch, so a crash leaves one of the two under the name.
//
// Reads verify every block and take the first good copy; a bad copy of a file that nobody is
// writing is rewritten from the good one (healed). scrub() looks at every copy of every block in
// use; repairing, it rewrites bad copies and the copies of a member being rebuilt.
//
// Threads: every method may be called from any thread, a Writer's too (RocksDB syncs its log from
// one thread while another appends: sync() holds the writer only to write its last block, not
// through the device flush), Readers by any number.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "meta/region_device.h"
#include "meta/region_journal.h"

namespace raidfs::meta {

class RegionFs {
 public:
  // Writes an empty journal: the region holds no files (mkfs). `salt` (from the array's UUID)
  // seeds every block checksum, so blocks another array left on the members never pass.
  static Result<void> format(RegionDevice& device, uint32_t salt);
  // Replays the journal and finds each file's length. EUCLEAN: no intact journal; EIO: the
  // journal names blocks outside the region or twice (damaged beyond what copies fix). Unless
  // read_only, everything replayed is made durable first (a crash may have left it in volatile
  // caches only).
  static Result<std::unique_ptr<RegionFs>> open(std::shared_ptr<RegionDevice> device,
                                                uint32_t salt, bool read_only);
  ~RegionFs();
  RegionFs(const RegionFs&) = delete;
  RegionFs& operator=(const RegionFs&) = delete;

  class Writer;
  class Reader;
  struct FileNode;

  // A new, empty file (one of that name is replaced). EROFS read-only; EINVAL a bad name.
  Result<std::unique_ptr<Writer>> create(std::string_view name);
  // Appends to an existing file. ENOENT.
  Result<std::unique_ptr<Writer>> append_to(std::string_view name);
  Result<std::unique_ptr<Reader>> open_file(std::string_view name);

  bool exists(std::string_view name) const;
  std::vector<std::string> list() const;
  Result<uint64_t> file_size(std::string_view name) const;  // ENOENT
  Result<uint64_t> mtime_ns(std::string_view name) const;   // its creation time
  Result<void> remove(std::string_view name);               // ENOENT
  // Replaces `to` if it exists. ENOENT no `from`.
  Result<void> rename(std::string_view from, std::string_view to);
  // Shrinks a file (durably: its new last block is written anew, then the journal records it).
  // EINVAL to grow it.
  Result<void> truncate(std::string_view name, uint64_t size);
  // Every namespace change so far is durable.
  Result<void> sync_namespace();

  struct Usage {
    uint64_t bytes = 0;         // the region's mirrored capacity (logical)
    uint64_t journal_bytes = 0; // the two journal areas
    uint64_t used_bytes = 0;    // blocks held by files
    uint64_t free_bytes = 0;    // blocks free now or once their freeing is durable
    uint64_t files = 0;
    uint32_t copies = 0;
    uint64_t healed_copies = 0;  // bad copies rewritten by reads since open
    uint64_t written_bytes = 0;  // to the device since open, every copy counted
  };
  Usage usage() const;

  // What a scrub found. A copy is bad when it is readable but not good for its block (torn,
  // stale, another owner's); unreadable copies (a member missing, failed or being rebuilt) are
  // counted apart, and `restored` are those a repair wrote to a member being rebuilt. Copies of
  // the blocks a crash may have caught half written — the journal's, and each file's past its
  // journaled size — that are not good are `behind`, not bad: a power cut kept the last write
  // from them, and the next read-write open brings them up to date.
  struct ScrubReport {
    uint64_t blocks = 0;
    uint64_t bad_copies = 0;
    uint64_t behind_copies = 0;
    uint64_t repaired = 0;
    uint64_t unreadable_copies = 0;
    uint64_t restored = 0;
    uint64_t lost_blocks = 0;  // no good copy at all
    std::vector<std::string> problems;  // one line each, the first few
  };
  // Checks every copy of every journal and file block in use; with `repair`, rewrites each bad
  // copy, and each copy that cannot be read but can be written (a member being rebuilt), from a
  // good one. EROFS repair on a read-only region.
  Result<ScrubReport> scrub(bool repair);
  bool read_only() const { return read_only_; }

 private:
  struct Extent {
    uint64_t start = 0;
    uint64_t count = 0;
    uint64_t allocation = 0;
  };
  // Where block `index` of a file lives, and which allocation its header must carry.
  struct BlockPlace {
    uint64_t block = 0;
    uint64_t allocation = 0;
  };
  using ExtentList = std::shared_ptr<const std::vector<Extent>>;

  RegionFs(std::shared_ptr<RegionDevice> device, uint32_t salt, bool read_only, region::Journal j);

  // State changes: applied here and, when live, queued for the journal. Replay applies the same
  // records, so what a replay rebuilds is what the running filesystem had. EIO when a record
  // does not fit the state (a damaged journal).
  Result<void> apply(const region::Record& r, bool live);
  Result<void> commit_locked(region::Record r);
  // Writes the queued records (and the sizes that became durable) to the journal, rolling it
  // into its other area when full. Not durable until a device flush.
  Result<void> write_journal_locked();
  region::Batch snapshot_locked() const;
  // Device flush after writing the journal; then what was freed before it may be reused.
  Result<void> make_durable();
  void release_freed_locked();

  // Extents for `blocks` blocks of the file at least (more, to let it grow in one piece).
  Result<void> allocate_locked(FileNode& node, uint64_t blocks);
  Result<Extent> take_free_locked(uint64_t want, uint64_t near);
  void give_back_locked(const Extent& e, bool live);
  static std::vector<BlockPlace> places(const std::vector<Extent>& extents, uint64_t first,
                                        uint64_t count);

  // Writes blocks [first, first + count) of the file, their payloads from `payload` (count
  // times 4064 bytes, the last `last_used` of them in use). Requires node.io_mu.
  Result<void> write_file_blocks(FileNode& node, uint64_t first, uint64_t count,
                                 const uint8_t* payload, uint32_t last_used);
  // Reads file bytes [offset, offset + n) (within the size the caller saw) into dest.
  Result<void> read_file(const std::shared_ptr<FileNode>& node, const ExtentList& extents,
                         uint64_t size, uint64_t offset, size_t n, uint8_t* dest);
  // The file's length at open: its journaled size, then every block after it that is its own.
  Result<void> probe_length(FileNode& node);
  // scrub(); `window_only`: only the blocks a crash may have left half written (open).
  Result<ScrubReport> check_copies(bool repair, bool window_only);
  // Rewrites `copies` of a file's block from `good`, if nobody writes the file.
  void heal(const std::shared_ptr<FileNode>& node, uint64_t block,
            const std::vector<uint32_t>& copies, const uint8_t* good);
  Result<std::shared_ptr<FileNode>> find_locked(std::string_view name) const;
  // The file's name now (a rename changes it under mu_); for messages made without mu_ held.
  std::string name_of(const FileNode& node) const;
  // Removes the file called `name`, if there is one.
  Result<void> remove_named(std::string_view name);
  // Shrinks the file to `size`; returns the bytes of its new partial last block.
  Result<std::vector<uint8_t>> truncate_node(const std::shared_ptr<FileNode>& node, uint64_t size);

  std::shared_ptr<RegionDevice> device_;
  const uint32_t salt_;
  const bool read_only_;
  const uint64_t data_first_;  // blocks below are the journal's

  mutable std::mutex mu_;  // everything below; a file's io_mu may be held when taking it
  region::Journal journal_;
  std::unordered_map<std::string, std::shared_ptr<FileNode>> files_;
  std::unordered_map<uint64_t, std::shared_ptr<FileNode>> by_id_;
  std::map<uint64_t, uint64_t> free_;  // start → count, free now
  struct Freed {
    uint64_t batch;  // the journal batch that freed it: reusable once that is durable
    Extent extent;
  };
  std::vector<Freed> freed_;
  uint64_t free_blocks_ = 0;  // in free_
  uint64_t next_id_ = 1;
  uint64_t next_allocation_ = 1;
  region::Batch queued_;          // records not written to the journal yet
  uint64_t batches_written_ = 0;  // journal batches written since open (a roll counts)
  uint64_t batches_durable_ = 0;  // of those, covered by a completed device flush
  std::atomic<uint64_t> healed_{0};
  std::atomic<uint64_t> written_blocks_{0};  // blocks × copies written by write()
};

struct RegionFs::FileNode {
  uint64_t id = 0;
  std::string name;
  uint64_t mtime_ns = 0;
  // Under RegionFs::mu_:
  ExtentList extents = std::make_shared<std::vector<Extent>>();
  uint64_t allocated = 0;  // blocks in extents
  uint64_t size = 0;       // bytes written to the device (readable)
  uint64_t durable = 0;    // bytes a completed flush covered
  uint64_t journaled = 0;  // the size the journal records
  bool removed = false;
  int writers = 0;
  // Held while the file's blocks are written: by its writer, a truncation, a scrub's repair.
  std::mutex io_mu;
};

// A file being written. append → flush (survives a process crash) → sync (durable) → close.
class RegionFs::Writer {
 public:
  ~Writer();  // closes, ignoring errors
  Result<void> append(std::span<const uint8_t> data);
  Result<void> flush();
  Result<void> sync();
  // Shrinks the file to `size` (RocksDB's Truncate on an open file).
  Result<void> truncate(uint64_t size);
  // Flushes, gives back the extent space beyond the data, and records the size if durable.
  Result<void> close();
  // Lets go without writing anything more, as a process that dies would (tests).
  void abandon() {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  uint64_t size() const {
    std::lock_guard lock(mu_);
    return full_ + tail_.size();
  }

 private:
  friend class RegionFs;
  Writer(RegionFs& fs, std::shared_ptr<FileNode> node, uint64_t full, std::vector<uint8_t> tail)
      : fs_(fs), node_(std::move(node)), full_(full), tail_(std::move(tail)) {}
  Result<void> flush_locked();
  RegionFs& fs_;
  std::shared_ptr<FileNode> node_;
  mutable std::mutex mu_;      // the rest; taken before the file's io_mu
  uint64_t full_;              // bytes in whole blocks already written
  std::vector<uint8_t> tail_;  // the bytes after them (less than one block's payload)
  bool tail_written_ = true;   // tail_ as it is now is on the device
  bool closed_ = false;
};

class RegionFs::Reader {
 public:
  // Reads up to n bytes at offset; returns the bytes read (short at the end of the file). EIO
  // when a block has no good copy.
  Result<size_t> read(uint64_t offset, size_t n, uint8_t* dest);
  uint64_t size() const;

 private:
  friend class RegionFs;
  Reader(RegionFs& fs, std::shared_ptr<FileNode> node) : fs_(fs), node_(std::move(node)) {}
  RegionFs& fs_;
  std::shared_ptr<FileNode> node_;
};

}  // namespace raidfs::meta
