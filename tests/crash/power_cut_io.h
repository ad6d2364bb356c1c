// PowerCutIo: a MemberIo that models the members losing power at a chosen instant, for the
// write-hole test (power_cut_test.cc).
//
// Until the cut, requests go to the wrapped MemberIo, and every write is remembered, with the
// bytes it replaced, until a flush of its member succeeds: it sits in that member's volatile
// cache. The cut comes just before a chosen write request (counted from 0) — one request of a
// batch, so a stripe's batch can be torn: the requests before it in the batch reached the members,
// the rest did not. At the cut:
//   - each 4 KiB block of each write still in a volatile cache is, at random, kept or lost (its
//     earlier bytes put back, latest write first), as a drive that loses its cache may have
//     stored any part of what it acknowledged — every block ends in some state it went through;
//   - the cut request, the rest of its batch and every later request fail with ECANCELED: not a
//     device error, so the array fails no member, and the filesystem sees its write, flush or
//     seal fail and commits nothing after the cut, as a dead machine would not.
// What it does not model: the metadata database's own unsynced writes (RocksDB's WAL tail) are
// not lost; every commit before the cut survives, synced or not.
//
// Several PowerCutIos (one per thread: the test's, the rebuild's) share one
// PowerDomain — the members' power and their volatile caches: writes are counted across all of
// them in the order they reach the members, a flush empties the member's cache of everyone's
// writes, and the cut stops them all. A MemberIo is used by one thread; the domain serialises
// the threads' batches. Test code: it allocates and reads on every write.
#pragma once

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "base/aligned_buffer.h"
#include "raid/member_io.h"

namespace raidfs::testing {

struct PowerDomain {
  struct Cached {
    uint32_t member;
    uint64_t offset;
    AlignedBuffer before;  // the bytes the write replaced
  };
  std::mutex mu;  // guards the rest, and serialises the batches of every PowerCutIo over it
  uint64_t cut_at = UINT64_MAX;
  uint64_t writes = 0;
  bool cut = false;
  bool torn = false;
  uint64_t blocks_lost = 0;
  std::mt19937 rng;
  std::vector<Cached> cache;  // writes not yet flushed, oldest first
};

class PowerCutIo final : public MemberIo {
 public:
  explicit PowerCutIo(std::unique_ptr<MemberIo> inner,
                      std::shared_ptr<PowerDomain> domain = std::make_shared<PowerDomain>())
      : inner_(std::move(inner)), d_(std::move(domain)) {}

  // The cut comes before write request number `write_index` (0: before the first) of the
  // domain; `seed` picks which cached blocks are lost. Without a call there is no cut.
  void cut_before_write(uint64_t write_index, uint32_t seed) {
    std::lock_guard lock(d_->mu);
    d_->cut_at = write_index;
    d_->rng.seed(seed);
  }
  bool cut() const { std::lock_guard lock(d_->mu); return d_->cut; }
  // Write requests that reached the members (of the whole domain).
  uint64_t writes_seen() const { std::lock_guard lock(d_->mu); return d_->writes; }
  bool torn_batch() const { std::lock_guard lock(d_->mu); return d_->torn; }  // cut inside a batch
  uint64_t blocks_lost() const { std::lock_guard lock(d_->mu); return d_->blocks_lost; }

  void execute(std::span<IoRequest> batch) override {
    std::lock_guard lock(d_->mu);
    if (d_->cut) {
      for (IoRequest& r : batch) r.result = -ECANCELED;
      return;
    }
    size_t pass = batch.size();  // requests [0, pass) reach the members
    uint64_t writes = d_->writes;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].op != IoOp::kWrite) continue;
      if (writes == d_->cut_at) {
        pass = i;
        break;
      }
      ++writes;
    }
    std::span<IoRequest> reaching = batch.subspan(0, pass);
    remember_writes(reaching);
    inner_->execute(reaching);
    for (const IoRequest& r : reaching) {
      if (r.op == IoOp::kWrite && r.ok()) ++d_->writes;
      if (r.op == IoOp::kFlush && r.ok())
        std::erase_if(d_->cache, [&](const PowerDomain::Cached& c) { return c.member == r.member; });
    }
    if (pass == batch.size()) return;
    d_->torn = pass > 0;
    for (size_t i = pass; i < batch.size(); ++i) batch[i].result = -ECANCELED;
    lose_cache();
    d_->cut = true;
  }

  Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) override {
    return inner_->register_buffers(ranges);
  }

 private:
  // Reads what each write of the batch is about to replace (one batch of reads).
  void remember_writes(std::span<IoRequest> batch) {
    std::vector<IoRequest> reads;
    const size_t first = d_->cache.size();
    for (const IoRequest& r : batch) {
      if (r.op != IoOp::kWrite) continue;
      d_->cache.push_back(PowerDomain::Cached{r.member, r.offset, AlignedBuffer(r.length)});
      reads.push_back(
          IoRequest{IoOp::kRead, r.member, r.offset, r.length, d_->cache.back().before.data(), 0});
    }
    if (reads.empty()) return;
    inner_->execute(reads);
    for (size_t i = 0; i < reads.size(); ++i)
      if (!reads[i].ok())
        std::memset(d_->cache[first + i].before.data(), 0, d_->cache[first + i].before.size());
  }

  // The power goes: each cached block, latest write first, is lost with probability 1/2.
  void lose_cache() {
    std::vector<IoRequest> restores;
    for (auto it = d_->cache.rbegin(); it != d_->cache.rend(); ++it) {
      for (size_t at = 0; at < it->before.size(); at += 4096) {
        if (d_->rng() % 2) continue;
        restores.push_back(
            IoRequest{IoOp::kWrite, it->member, it->offset + at, 4096, it->before.data() + at, 0});
        ++d_->blocks_lost;
        // One at a time: requests to one member within a batch are not ordered.
        inner_->execute(std::span(&restores.back(), 1));
      }
    }
    d_->cache.clear();
  }

  std::unique_ptr<MemberIo> inner_;
  std::shared_ptr<PowerDomain> d_;
};

}  // namespace raidfs::testing
