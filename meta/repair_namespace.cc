// repair: the namespace passes — 2 root, 3 directory entries and cookies, 4 links (parents,
// cycles, lost+found, orphan entries), 5 nlink. See repair.h.
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "meta/keys.h"
#include "meta/repair_internal.h"

namespace raidfs::meta::repair_detail {
namespace {

std::string dirent_name(uint64_t parent, std::string_view name) {
  return "dirent " + std::to_string(parent) + "/" + std::string(name);
}

bool is_directory(const std::map<uint64_t, Inode>& inodes, uint64_t ino) {
  auto it = inodes.find(ino);
  return it != inodes.end() && is_dir(it->second);
}

Inode new_directory(uint64_t ino, uint64_t parent, uint32_t perms) {
  Inode d;
  d.ino = ino;
  d.mode = S_IFDIR | perms;
  d.nlink = 2;
  d.atime_ns = d.mtime_ns = d.ctime_ns = now_ns();
  d.parent = parent;
  d.next_cookie = kFirstCookie;
  return d;
}

}  // namespace

Result<void> repair_root(Repairer& r) {
  Txn txn(r.store());
  RAIDFS_TRY(auto root, txn.find_inode(kRootIno));
  if (root && is_dir(*root)) return {};
  // Its entries keep their cookies: the new root hands out cookies above all of them.
  uint64_t next_cookie = kFirstCookie;
  RAIDFS_TRY(auto dirents, load_dirents(r.store()));
  for (const DirentRecord& d : dirents)
    if (d.parent == kRootIno) next_cookie = std::max(next_cookie, d.dirent.cookie + 1);
  if (!r.propose(false, root ? "root inode 1 is not a directory: made a new root directory"
                             : "root directory (inode 1) missing: made again"))
    return {};
  Inode fresh = new_directory(kRootIno, kRootIno, 0755);
  fresh.next_cookie = next_cookie;
  txn.put_inode(fresh);
  return r.commit(txn);
}

Result<void> repair_dirents(Repairer& r) {
  Txn txn(r.store());
  RAIDFS_TRY(auto inodes, load_inodes(r.store()));
  RAIDFS_TRY(auto dirents, load_dirents(r.store()));

  // Entries that cannot stay: no directory to be in, or nothing to name.
  std::vector<const DirentRecord*> kept;
  for (const DirentRecord& d : dirents) {
    const std::string what = dirent_name(d.parent, d.name);
    if (!is_directory(inodes, d.parent)) {
      if (r.propose(false, what + ": its directory is missing or not a directory: removed"))
        txn.del(Family::kDirents, dirent_key(d.parent, d.name));
      else
        kept.push_back(&d);
      continue;
    }
    if (!inodes.contains(d.dirent.child)) {
      if (r.propose(false,
                    what + " names missing inode " + std::to_string(d.dirent.child) + ": removed"))
        txn.del(Family::kDirents, dirent_key(d.parent, d.name));
      else
        kept.push_back(&d);
      continue;
    }
    kept.push_back(&d);
  }

  // A directory has exactly one name: keep the one in the directory its parent link names.
  std::map<uint64_t, std::vector<const DirentRecord*>> dir_names;
  for (const DirentRecord* d : kept)
    if (is_directory(inodes, d->dirent.child)) dir_names[d->dirent.child].push_back(d);
  std::set<const DirentRecord*> dropped;
  for (const auto& [child, names] : dir_names) {
    if (names.size() < 2 && child != kRootIno) continue;
    const DirentRecord* keep = nullptr;
    if (child != kRootIno) {
      keep = names.front();
      for (const DirentRecord* d : names)
        if (d->parent == inodes[child].parent) keep = d;
    }
    for (const DirentRecord* d : names) {
      if (d == keep) continue;
      const std::string why = child == kRootIno
                                  ? " names the root directory"
                                  : " is a second name of directory " + std::to_string(child);
      if (r.propose(false, dirent_name(d->parent, d->name) + why + ": removed")) {
        txn.del(Family::kDirents, dirent_key(d->parent, d->name));
        dropped.insert(d);
      }
    }
  }
  std::erase_if(kept, [&](const DirentRecord* d) { return dropped.contains(d); });

  // Types, and cookies: unique per directory, at least kFirstCookie, below next_cookie.
  std::map<uint64_t, uint64_t> next_cookie;  // directory → its (possibly raised) next cookie
  for (const DirentRecord* d : kept)
    if (auto p = inodes.find(d->parent); p != inodes.end())
      next_cookie.try_emplace(d->parent, std::max(p->second.next_cookie, kFirstCookie));
  for (const DirentRecord* d : kept) {
    uint64_t& next = next_cookie[d->parent];
    if (d->dirent.cookie >= next) next = d->dirent.cookie + 1;
  }
  std::set<std::pair<uint64_t, uint64_t>> used;
  std::map<std::pair<uint64_t, uint64_t>, std::string> index;  // the cookie index wanted
  for (const DirentRecord* d : kept) {
    Dirent fixed = d->dirent;
    const std::string what = dirent_name(d->parent, d->name);
    if (auto child = inodes.find(fixed.child); child != inodes.end()) {
      const FileType type = file_type_of_mode(child->second.mode);
      if (type != fixed.type &&
          r.propose(true, what + ": type " + std::to_string(static_cast<int>(fixed.type)) +
                              ", the inode's is " + std::to_string(static_cast<int>(type)) +
                              ": corrected"))
        fixed.type = type;
    }
    if (fixed.cookie < kFirstCookie || used.contains({d->parent, fixed.cookie})) {
      const uint64_t fresh = next_cookie[d->parent]++;
      if (r.propose(true, what + ": readdir cookie " + std::to_string(fixed.cookie) +
                              (fixed.cookie < kFirstCookie ? " out of range"
                                                           : " shared with another entry") +
                              ": given cookie " + std::to_string(fresh)))
        fixed.cookie = fresh;
    }
    used.insert({d->parent, fixed.cookie});
    index[{d->parent, fixed.cookie}] = d->name;
    if (!(fixed == d->dirent))
      txn.put(Family::kDirents, dirent_key(d->parent, d->name), encode_dirent(fixed));
  }
  for (const auto& [dir, next] : next_cookie) {
    Inode inode = inodes[dir];
    if (inode.next_cookie == next) continue;
    if (inode.next_cookie > next) continue;
    if (r.propose(true, "directory " + std::to_string(dir) + ": next cookie " +
                            std::to_string(inode.next_cookie) +
                            " not above its entries': raised to " + std::to_string(next))) {
      inode.next_cookie = next;
      txn.put_inode(inode);
    }
  }

  // The cookie index is derived from the entries: make it match them exactly.
  RAIDFS_CHECK(r.store().scan(
      Family::kCookies, "", "", [&](std::string_view k, std::string_view v) -> Result<bool> {
        auto key = parse_u64_pair_key(k);
        auto name = decode_cookie(v);
        if (!key || !name) return true;  // pass 1 removed what does not decode
        auto want = index.find(*key);
        if (want != index.end() && want->second == *name) {
          index.erase(want);
          return true;
        }
        if (want == index.end() && r.propose(true, "cookie index " + std::to_string(key->first) +
                                                       ":" + std::to_string(key->second) + " → \"" +
                                                       *name + "\" has no entry: removed"))
          txn.del(Family::kCookies, std::string(k));
        return true;
      }));
  for (const auto& [key, name] : index)
    if (r.propose(true, dirent_name(key.first, name) + " (cookie " + std::to_string(key.second) +
                            ") missing from the cookie index: added"))
      txn.put(Family::kCookies, cookie_key(key.first, key.second), encode_cookie(name));
  return r.commit(txn);
}

Result<void> repair_links(Repairer& r) {
  Txn txn(r.store());
  RAIDFS_TRY(auto inodes, load_inodes(r.store()));
  RAIDFS_TRY(auto dirents, load_dirents(r.store()));
  std::set<uint64_t> orphans;
  RAIDFS_CHECK(r.store().scan(Family::kOrphans, "", "",
                              [&](std::string_view k, std::string_view) -> Result<bool> {
                                if (auto ino = parse_u64_key(k)) orphans.insert(*ino);
                                return true;
                              }));
  if (!is_directory(inodes, kRootIno)) return {};  // left by pass 2 (policy): nowhere to link to

  std::unordered_map<uint64_t, uint32_t> names;
  std::unordered_map<uint64_t, const DirentRecord*> dir_entry;  // a directory's (single) name
  for (const DirentRecord& d : dirents) {
    ++names[d.dirent.child];
    if (is_directory(inodes, d.dirent.child)) dir_entry[d.dirent.child] = &d;
  }

  // lost+found: found or made on first use.
  std::optional<Inode> lost_found;
  bool lost_found_unusable = false;
  Inode root = inodes[kRootIno];
  bool root_changed = false;
  auto get_lost_found = [&]() -> Result<Inode*> {
    if (lost_found) return &*lost_found;
    if (lost_found_unusable) return nullptr;
    RAIDFS_TRY(auto existing, txn.find_dirent(kRootIno, kLostFoundName));
    if (existing) {
      if (is_directory(inodes, existing->child)) {
        lost_found = inodes[existing->child];
        return &*lost_found;
      }
      lost_found_unusable = true;
      r.propose(false, "/lost+found is taken by a non-directory: nothing can be linked there");
      return nullptr;
    }
    RAIDFS_TRY(auto counter, txn.get(Family::kSuper, kNextInodeKey));
    uint64_t ino = inodes.rbegin()->first + 1;
    if (counter)
      if (auto next = decode_counter(*counter)) ino = std::max(ino, *next);
    r.propose(true, "created /lost+found (inode " + std::to_string(ino) + ")");
    txn.put(Family::kSuper, std::string(kNextInodeKey), encode_counter(ino + 1));
    lost_found = new_directory(ino, kRootIno, 0700);
    const Dirent d{ino, FileType::kDirectory, root.next_cookie++};
    root_changed = true;
    txn.put_dirent(kRootIno, kLostFoundName, d);
    inodes[ino] = *lost_found;
    return &*lost_found;
  };
  // Links `ino` into lost+found as "#INO"; false when there is no lost+found to link it into.
  auto link_lost = [&](uint64_t ino) -> Result<bool> {
    RAIDFS_TRY(Inode * lf, get_lost_found());
    if (lf == nullptr) return false;
    const std::string name = "#" + std::to_string(ino);
    RAIDFS_TRY(auto taken, txn.find_dirent(lf->ino, name));
    if (taken) return false;
    Inode& inode = inodes[ino];
    txn.put_dirent(lf->ino, name, Dirent{ino, file_type_of_mode(inode.mode), lf->next_cookie++});
    if (is_dir(inode)) {
      inode.parent = lf->ino;
      txn.put_inode(inode);
      dir_entry[ino] = nullptr;
    }
    return true;
  };

  // Directories: the parent link follows the name.
  for (auto& [ino, inode] : inodes) {
    if (!is_dir(inode) || ino == kRootIno) continue;
    auto entry = dir_entry.find(ino);
    if (entry == dir_entry.end() || entry->second == nullptr) continue;
    const uint64_t named_in = entry->second->parent;
    if (inode.parent != named_in &&
        r.propose(true, "directory " + std::to_string(ino) + ": parent " +
                            std::to_string(inode.parent) + ", named in " +
                            std::to_string(named_in) + ": parent set to " +
                            std::to_string(named_in))) {
      inode.parent = named_in;
      txn.put_inode(inode);
    }
  }
  // Inodes without a name (not orphans): into lost+found.
  std::vector<uint64_t> nameless;
  for (const auto& [ino, inode] : inodes)
    if (ino != kRootIno && !names.contains(ino) && !orphans.contains(ino) &&
        (lost_found == std::nullopt || ino != lost_found->ino))
      nameless.push_back(ino);
  for (uint64_t ino : nameless) {
    const std::string what =
        std::string(is_dir(inodes[ino]) ? "directory " : "inode ") + std::to_string(ino);
    if (!r.propose(true, what + " has no name: linked into /lost+found as #" + std::to_string(ino)))
      continue;
    RAIDFS_TRY(bool linked, link_lost(ino));
    if (!linked) r.propose(false, what + ": could not be linked into /lost+found");
  }
  // Directory cycles cut off from the root: each is broken at its lowest inode, which moves to
  // lost+found (losing the name it had inside the cycle). Each directory is walked once.
  std::unordered_set<uint64_t> reaches{kRootIno}, cut_off;
  if (lost_found) reaches.insert(lost_found->ino);
  for (const auto& [start, start_inode] : inodes) {
    if (!is_dir(start_inode) || reaches.contains(start) || cut_off.contains(start)) continue;
    std::vector<uint64_t> chain;
    std::unordered_set<uint64_t> on_chain;
    uint64_t ino = start;
    bool good = false, cycle = false;
    for (;;) {
      if (reaches.contains(ino)) {
        good = true;
        break;
      }
      if (cut_off.contains(ino)) break;
      if (on_chain.contains(ino)) {
        cycle = true;
        break;
      }
      auto it = inodes.find(ino);
      if (it == inodes.end() || !is_dir(it->second)) break;  // a broken chain: left to check()
      chain.push_back(ino);
      on_chain.insert(ino);
      ino = it->second.parent;
    }
    if (cycle) {
      const auto cycle_begin = std::find(chain.begin(), chain.end(), ino);
      const uint64_t cut = *std::min_element(cycle_begin, chain.end());
      const DirentRecord* entry = dir_entry.contains(cut) ? dir_entry[cut] : nullptr;
      if (entry != nullptr &&
          r.propose(false, "directory " + std::to_string(cut) +
                               " is in a cycle cut off from the root: " +
                               dirent_name(entry->parent, entry->name) + " moved to /lost+found/#" +
                               std::to_string(cut))) {
        txn.del_dirent(entry->parent, entry->name, entry->dirent);
        RAIDFS_TRY(bool linked, link_lost(cut));
        good = linked;
        if (!linked)
          r.propose(false,
                    "directory " + std::to_string(cut) + ": could not be linked into /lost+found");
      }
    }
    for (uint64_t c : chain) (good ? reaches : cut_off).insert(c);
  }
  // Orphan entries only for inodes that exist without a name.
  for (uint64_t ino : orphans) {
    if (inodes.contains(ino) && !names.contains(ino)) continue;
    if (r.propose(true, "orphan entry of inode " + std::to_string(ino) +
                            (inodes.contains(ino) ? ", which has a name" : ", which is missing") +
                            ": removed"))
      txn.del(Family::kOrphans, orphan_key(ino));
  }
  if (lost_found) txn.put_inode(*lost_found);
  if (root_changed) txn.put_inode(root);
  return r.commit(txn);
}

Result<void> repair_nlink(Repairer& r) {
  Txn txn(r.store());
  RAIDFS_TRY(auto inodes, load_inodes(r.store()));
  RAIDFS_TRY(auto dirents, load_dirents(r.store()));
  std::unordered_map<uint64_t, uint32_t> names, subdirs;
  for (const DirentRecord& d : dirents) {
    ++names[d.dirent.child];
    if (is_directory(inodes, d.dirent.child)) ++subdirs[d.parent];
  }
  for (auto& [ino, inode] : inodes) {
    const uint32_t want = is_dir(inode) ? 2 + subdirs[ino] : names[ino];
    if (inode.nlink == want) continue;
    if (r.propose(true, std::string(is_dir(inode) ? "directory " : "inode ") + std::to_string(ino) +
                            ": nlink " + std::to_string(inode.nlink) + ", should be " +
                            std::to_string(want) + ": fixed")) {
      inode.nlink = want;
      txn.put_inode(inode);
    }
  }
  return r.commit(txn);
}

}  // namespace raidfs::meta::repair_detail
