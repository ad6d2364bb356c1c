#include "meta/checker.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "meta/fs_meta.h"
#include "meta/keys.h"

namespace raidfs::meta {

std::string_view finding_kind_name(Finding::Kind kind) {
  switch (kind) {
    case Finding::Kind::kCorruptRecord: return "corrupt-record";
    case Finding::Kind::kMissingRoot: return "missing-root";
    case Finding::Kind::kDanglingDirent: return "dangling-dirent";
    case Finding::Kind::kDirentInNonDir: return "dirent-in-non-directory";
    case Finding::Kind::kCookieIndex: return "cookie-index";
    case Finding::Kind::kExtentIndex: return "extent-index";
    case Finding::Kind::kWrongNlink: return "wrong-nlink";
    case Finding::Kind::kDirLinks: return "directory-links";
    case Finding::Kind::kUnreferencedInode: return "unreferenced-inode";
    case Finding::Kind::kOrphanList: return "orphan-list";
    case Finding::Kind::kExtentOverlap: return "extent-overlap";
    case Finding::Kind::kExtentNoInode: return "extent-without-inode";
    case Finding::Kind::kExtentBadStripe: return "extent-bad-stripe";
    case Finding::Kind::kExtentBeyondEof: return "extent-beyond-eof";
    case Finding::Kind::kLiveCount: return "live-count";
    case Finding::Kind::kBlockCount: return "block-count";
    case Finding::Kind::kLeakedStripe: return "leaked-stripe";
    case Finding::Kind::kXattrNoInode: return "xattr-without-inode";
    case Finding::Kind::kCounter: return "counter";
    case Finding::Kind::kParityRow: return "parity-row";
  }
  return "unknown";
}

namespace {

struct InodeInfo {
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t parent = 0;
  uint64_t next_cookie = 0;
  uint32_t names = 0;       // dirents naming it
  uint32_t subdirs = 0;     // child directories (for directories)
  uint64_t named_in = 0;    // the parent of the (last) dirent naming it
  uint64_t blocks = 0;      // as recorded (kBlocksUnknown in a format-1 store)
  uint64_t referenced = 0;  // blocks its extents reference
};

class Checker {
 public:
  explicit Checker(const Store& store) : store_(store) {}

  Result<std::vector<Finding>> run() {
    RAIDFS_CHECK(load_inodes());
    RAIDFS_CHECK(load_dirents());
    RAIDFS_CHECK(check_cookies());
    RAIDFS_CHECK(load_orphans());
    check_links();
    check_reachable();
    RAIDFS_CHECK(check_extents());
    RAIDFS_CHECK(check_extents_by_stripe());
    check_block_counts();
    RAIDFS_CHECK(check_stripes());
    RAIDFS_CHECK(check_parity_rows());
    RAIDFS_CHECK(check_xattrs());
    RAIDFS_CHECK(check_counter());
    return std::move(findings_);
  }

 private:
  void report(Finding::Kind kind, std::string detail) {
    findings_.push_back(Finding{kind, std::move(detail)});
  }
  // Scans a family, turning decode errors into findings instead of stopping.
  Result<void> scan(Family f, const std::function<Result<void>(std::string_view, std::string_view)>& fn) {
    return store_.scan(f, "", "", [&](std::string_view k, std::string_view v) -> Result<bool> {
      auto r = fn(k, v);
      if (!r) {
        if (r.error().code != EIO) return std::unexpected(r.error());
        report(Finding::Kind::kCorruptRecord,
               std::string(family_name(f)) + ": " + r.error().message);
      }
      return true;
    });
  }

  Result<void> load_inodes() {
    RAIDFS_CHECK(scan(Family::kInodes, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(uint64_t ino, parse_u64_key(k));
      RAIDFS_TRY(Inode i, decode_inode(ino, v));
      inodes_[ino] = InodeInfo{i.mode, i.nlink, i.size, i.parent, i.next_cookie, 0, 0, 0, i.blocks, 0};
      max_ino_ = std::max(max_ino_, ino);
      return {};
    }));
    auto root = inodes_.find(kRootIno);
    if (root == inodes_.end() || !S_ISDIR(root->second.mode))
      report(Finding::Kind::kMissingRoot, "inode 1 is missing or not a directory");
    return {};
  }

  Result<void> load_dirents() {
    return scan(Family::kDirents, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(auto key, parse_u64_name_key(k));
      RAIDFS_TRY(Dirent d, decode_dirent(v));
      const std::string where = "dirent " + std::to_string(key.first) + "/" + std::string(key.second);
      std::vector<std::string>& named = dirent_cookies_[{key.first, d.cookie}];
      if (!named.empty())  // the index can point at only one of them: readdir misses the others
        report(Finding::Kind::kCookieIndex, where + ": cookie " + std::to_string(d.cookie) +
                                                " also belongs to \"" + named.front() + "\"");
      named.emplace_back(key.second);
      auto parent = inodes_.find(key.first);
      if (parent == inodes_.end() || !S_ISDIR(parent->second.mode)) {
        report(Finding::Kind::kDirentInNonDir, where + ": parent is missing or not a directory");
      } else if (d.cookie >= parent->second.next_cookie || d.cookie < kFirstCookie) {
        report(Finding::Kind::kCookieIndex, where + ": cookie " + std::to_string(d.cookie) +
                                                " outside the directory's range");
      }
      auto child = inodes_.find(d.child);
      if (child == inodes_.end()) {
        report(Finding::Kind::kDanglingDirent,
               where + " → missing inode " + std::to_string(d.child));
        return {};
      }
      if (file_type_of_mode(child->second.mode) != d.type)
        report(Finding::Kind::kDanglingDirent, where + ": type differs from the inode's");
      ++child->second.names;
      child->second.named_in = key.first;
      if (S_ISDIR(child->second.mode) && parent != inodes_.end()) ++parent->second.subdirs;
      return {};
    });
  }

  Result<void> check_cookies() {
    std::set<std::pair<uint64_t, uint64_t>> seen;
    RAIDFS_CHECK(scan(Family::kCookies, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(auto key, parse_u64_pair_key(k));
      RAIDFS_TRY(std::string name, decode_cookie(v));
      seen.insert(key);
      auto it = dirent_cookies_.find(key);
      if (it == dirent_cookies_.end() || std::ranges::find(it->second, name) == it->second.end())
        report(Finding::Kind::kCookieIndex, "cookie " + std::to_string(key.first) + ":" +
                                                std::to_string(key.second) + " → \"" + name +
                                                "\" has no matching dirent");
      return {};
    }));
    for (const auto& [key, names] : dirent_cookies_)
      if (!seen.contains(key))
        report(Finding::Kind::kCookieIndex, "dirent " + std::to_string(key.first) + "/" +
                                                names.front() + " has no cookie index entry");
    return {};
  }

  Result<void> load_orphans() {
    return scan(Family::kOrphans, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(uint64_t ino, parse_u64_key(k));
      RAIDFS_CHECK(decode_orphan(v));
      orphans_.insert(ino);
      auto it = inodes_.find(ino);
      if (it == inodes_.end() || it->second.nlink != 0 || it->second.names != 0)
        report(Finding::Kind::kOrphanList,
               "orphan " + std::to_string(ino) + " is missing or still linked");
      return {};
    });
  }

  void check_links() {
    for (const auto& [ino, info] : inodes_) {
      const std::string what = "inode " + std::to_string(ino);
      if (S_ISDIR(info.mode)) {
        // A removed directory still open when the daemon stopped: an orphan, nameless, nlink 0.
        if (orphans_.contains(ino) && info.nlink == 0 && info.names == 0 && info.subdirs == 0) continue;
        const uint32_t want = 2 + info.subdirs;
        if (info.nlink != want)
          report(Finding::Kind::kWrongNlink, what + " (directory): nlink " +
                                                 std::to_string(info.nlink) + ", want " +
                                                 std::to_string(want));
        const uint32_t want_names = ino == kRootIno ? 0 : 1;
        const uint64_t want_parent = ino == kRootIno ? kRootIno : info.named_in;
        if (info.names != want_names || info.parent != want_parent)
          report(Finding::Kind::kDirLinks, what + ": named " + std::to_string(info.names) +
                                               " times, parent " + std::to_string(info.parent));
        continue;
      }
      if (info.nlink != info.names)
        report(Finding::Kind::kWrongNlink, what + ": nlink " + std::to_string(info.nlink) +
                                               ", named " + std::to_string(info.names) + " times");
      if (info.names == 0 && !orphans_.contains(ino))
        report(Finding::Kind::kUnreferencedInode, what + ": no name and not an orphan");
    }
  }

  // Every directory must reach the root through its parent links: a cycle of directories naming
  // each other passes the per-directory link checks but is cut off from the namespace. Each
  // directory is walked once (a walk stops at one already known to reach the root, or not).
  void check_reachable() {
    enum class Reach : uint8_t { kWalking, kYes, kNo };
    std::unordered_map<uint64_t, Reach> reach;
    reach[kRootIno] = Reach::kYes;
    for (const auto& [start, start_info] : inodes_) {
      if (!S_ISDIR(start_info.mode) || reach.contains(start) || orphans_.contains(start)) continue;
      std::vector<uint64_t> path;
      uint64_t ino = start;
      Reach result = Reach::kNo;
      for (;;) {
        auto known = reach.find(ino);
        if (known != reach.end()) {
          result = known->second == Reach::kYes ? Reach::kYes : Reach::kNo;  // kWalking: a cycle
          break;
        }
        auto it = inodes_.find(ino);
        if (it == inodes_.end() || !S_ISDIR(it->second.mode)) break;  // a broken parent link
        reach[ino] = Reach::kWalking;
        path.push_back(ino);
        ino = it->second.parent;
      }
      for (uint64_t p : path) {
        reach[p] = result;
        if (result == Reach::kNo)
          report(Finding::Kind::kDirLinks, "directory " + std::to_string(p) +
                                               " is not reachable from the root (parent chain "
                                               "broken or a cycle)");
      }
    }
  }

  Result<void> load_stripes() {
    return scan(Family::kStripes, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(uint64_t id, parse_u64_key(k));
      RAIDFS_TRY(Stripe s, decode_stripe(id, v));
      stripes_[id] = std::move(s);
      return {};
    });
  }

  Result<void> check_extents() {
    RAIDFS_CHECK(load_stripes());
    uint64_t last_ino = 0, last_end = 0;
    bool any = false;
    return scan(Family::kExtents, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(auto key, parse_u64_pair_key(k));
      RAIDFS_TRY(Extent e, decode_extent(key.second, v));
      const std::string what =
          "extent " + std::to_string(key.first) + "@" + std::to_string(key.second);
      if (any && key.first == last_ino && e.file_offset < last_end)
        report(Finding::Kind::kExtentOverlap, what + " overlaps the previous extent");
      if (!any || key.first != last_ino) last_end = 0;
      any = true;
      last_ino = key.first;
      last_end = std::max(last_end, e.file_end());
      auto inode = inodes_.find(key.first);
      if (inode == inodes_.end() || !S_ISREG(inode->second.mode))
        report(Finding::Kind::kExtentNoInode, what + ": inode missing or not a regular file");
      else if (e.file_end() > inode->second.size)
        report(Finding::Kind::kExtentBeyondEof, what + " ends past the file size");
      if (inode != inodes_.end()) inode->second.referenced += blocks_touched(e.stripe_offset, e.length);
      auto stripe = stripes_.find(e.stripe_id);
      if (stripe == stripes_.end() || stripe->second.state == StripeState::kFree)
        report(Finding::Kind::kExtentBadStripe,
               what + " → free stripe " + std::to_string(e.stripe_id));
      else if (uint64_t{e.stripe_offset} + e.length > stripe->second.filled_bytes)
        report(Finding::Kind::kExtentBadStripe, what + " → past the filled bytes of stripe " +
                                                    std::to_string(e.stripe_id));
      refs_[e.stripe_id] += blocks_touched(e.stripe_offset, e.length);
      extent_keys_.emplace(e.stripe_id, key.first, key.second);
      return {};
    });
  }

  // The index holds an entry for every extent (from store format 3 on; an older store gets it
  // at its upgrade). Entries of extents that have left a stripe stay until it is freed (format
  // 4): only those of a free stripe are wrong — a reused stripe would seem to hold them.
  Result<void> check_extents_by_stripe() {
    if (store_.super().store_format < 3) return {};
    RAIDFS_CHECK(scan(Family::kExtentsByStripe, [&](std::string_view k, std::string_view) -> Result<void> {
      RAIDFS_TRY(ExtentByStripeKey key, parse_extent_by_stripe_key(k));
      if (extent_keys_.erase({key.stripe_id, key.ino, key.file_offset}) > 0) return {};
      auto stripe = stripes_.find(key.stripe_id);
      if (stripe == stripes_.end() || stripe->second.state == StripeState::kFree)
        report(Finding::Kind::kExtentIndex, "stripe " + std::to_string(key.stripe_id) +
                                                ", which is free, indexes extent " +
                                                std::to_string(key.ino) + "@" +
                                                std::to_string(key.file_offset));
      return {};
    }));
    for (const auto& [stripe, ino, offset] : extent_keys_)
      report(Finding::Kind::kExtentIndex, "extent " + std::to_string(ino) + "@" +
                                              std::to_string(offset) + " in stripe " +
                                              std::to_string(stripe) + " is missing from the index");
    extent_keys_.clear();
    return {};
  }

  void check_block_counts() {
    for (const auto& [ino, info] : inodes_)
      if (S_ISREG(info.mode) && info.blocks != kBlocksUnknown && info.blocks != info.referenced)
        report(Finding::Kind::kBlockCount, "inode " + std::to_string(ino) + ": " +
                                               std::to_string(info.blocks) +
                                               " blocks recorded, its extents reference " +
                                               std::to_string(info.referenced));
  }

  Result<void> check_stripes() {
    // Generations are handed out below the persisted limit: one at or above it could be reused.
    std::optional<uint64_t> generation_limit;
    RAIDFS_TRY(auto limit, store_.get(Family::kSuper, kGenerationLimitKey));
    if (!limit) {
      report(Finding::Kind::kCounter, "generation_limit counter missing");
    } else if (auto decoded = decode_counter(*limit); !decoded) {
      report(Finding::Kind::kCorruptRecord, decoded.error().message);
    } else {
      generation_limit = *decoded;
    }
    for (const auto& [id, s] : stripes_) {
      const std::string what = "stripe " + std::to_string(id);
      if (generation_limit && s.generation >= *generation_limit)
        report(Finding::Kind::kCounter, what + ": generation " + std::to_string(s.generation) +
                                            " not below generation_limit " +
                                            std::to_string(*generation_limit));
      if (id >= store_.super().stripe_count)
        report(Finding::Kind::kCorruptRecord, what + " is beyond the stripe count");
      auto ref = refs_.find(id);
      const uint64_t referenced = ref == refs_.end() ? 0 : ref->second;
      if (s.state != StripeState::kFree && s.live_blocks != referenced)
        report(Finding::Kind::kLiveCount, what + ": live " + std::to_string(s.live_blocks) +
                                              ", extents reference " + std::to_string(referenced));
      if (s.state == StripeState::kSealed && s.live_blocks == 0)
        report(Finding::Kind::kLeakedStripe, what + " is sealed with no live block");
    }
    return {};
  }

  // An open stripe's parity rows (store format 5): only open stripes have them, each one block
  // per parity.
  Result<void> check_parity_rows() {
    return scan(Family::kParityRows, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(auto key, parse_u64_pair_key(k));
      const std::string what = "parity row " + std::to_string(key.second) + " of stripe " +
                               std::to_string(key.first);
      auto stripe = stripes_.find(key.first);
      if (stripe == stripes_.end() || stripe->second.state != StripeState::kOpen)
        report(Finding::Kind::kParityRow, what + ", which is not open");
      else if (v.size() != 1 + size_t{stripe->second.parity_count} * kBlockBytes)
        report(Finding::Kind::kParityRow,
               what + ": not " + std::to_string(stripe->second.parity_count) + " parity blocks");
      return {};
    });
  }

  Result<void> check_xattrs() {
    return scan(Family::kXattrs, [&](std::string_view k, std::string_view v) -> Result<void> {
      RAIDFS_TRY(auto key, parse_u64_name_key(k));
      RAIDFS_TRY(std::string value, decode_xattr(v));
      if (!inodes_.contains(key.first))
        report(Finding::Kind::kXattrNoInode, "xattr of missing inode " + std::to_string(key.first));
      return {};
    });
  }

  Result<void> check_counter() {
    RAIDFS_TRY(auto v, store_.get(Family::kSuper, kNextInodeKey));
    if (!v) {
      report(Finding::Kind::kCounter, "next_inode counter missing");
      return {};
    }
    auto next = decode_counter(*v);
    if (!next)
      report(Finding::Kind::kCorruptRecord, next.error().message);
    else if (*next <= max_ino_)
      report(Finding::Kind::kCounter, "next_inode " + std::to_string(*next) +
                                          " not above inode " + std::to_string(max_ino_));
    return {};
  }

  const Store& store_;
  std::vector<Finding> findings_;
  std::unordered_map<uint64_t, InodeInfo> inodes_;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<std::string>> dirent_cookies_;  // names
  std::set<uint64_t> orphans_;
  std::map<uint64_t, Stripe> stripes_;
  std::unordered_map<uint64_t, uint64_t> refs_;
  std::set<std::tuple<uint64_t, uint64_t, uint64_t>> extent_keys_;  // (stripe, inode, offset)
  uint64_t max_ino_ = 0;
};

}  // namespace

Result<std::vector<Finding>> check(const Store& store) { return Checker(store).run(); }

}  // namespace raidfs::meta
