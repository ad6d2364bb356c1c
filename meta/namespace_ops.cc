// FsMeta namespace operations: create, link, unlink, rmdir, rename, setattr, release, xattrs.
// Each computes in a Txn under mu_ and commits one batch (see fs_meta.h for the rules).
#include <sys/xattr.h>

#include <unordered_set>

#include "meta/fs_meta.h"
#include "meta/txn.h"

namespace raidfs::meta {
namespace {

Result<void> check_xattr_name(std::string_view name) {
  if (name.empty()) return fail(EINVAL, "empty xattr name");
  if (name.size() > kNameBytesMax) return fail(ERANGE, "xattr name longer than 255 bytes");
  return {};
}

// Stores a new inode's xattrs (CreateArgs::xattrs) in the operation's batch.
Result<void> put_xattrs(Txn& txn, uint64_t ino,
                        const std::vector<std::pair<std::string, std::string>>& xattrs) {
  for (const auto& [name, value] : xattrs) {
    RAIDFS_CHECK(check_xattr_name(name));
    if (value.size() > kXattrValueBytesMax) return fail(E2BIG, "xattr value larger than 64 KiB");
    txn.put(Family::kXattrs, xattr_key(ino, name), encode_xattr(value));
  }
  return {};
}

// Loads inode `ino`, applies `change`, stores it back (through the Txn, so aliases stay right).
template <class F>
Result<void> mutate(Txn& txn, uint64_t ino, F&& change) {
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  change(inode);
  txn.put_inode(inode);
  return {};
}

Result<void> touch_dir(Txn& txn, uint64_t dir, int64_t now, int nlink_delta) {
  return mutate(txn, dir, [&](Inode& d) {
    d.mtime_ns = d.ctime_ns = now;
    d.nlink = static_cast<uint32_t>(int64_t{d.nlink} + nlink_delta);
  });
}

// A new cookie from directory `dir` (bumps its next_cookie).
Result<uint64_t> take_cookie(Txn& txn, uint64_t dir) {
  uint64_t cookie = 0;
  RAIDFS_CHECK(mutate(txn, dir, [&](Inode& d) { cookie = d.next_cookie++; }));
  if (cookie < kFirstCookie) return corrupt("inode: directory cookie counter out of range");
  return cookie;
}

Result<bool> dir_is_empty(const Store& store, uint64_t dir) {
  bool empty = true;
  RAIDFS_CHECK(store.scan(Family::kDirents, u64_key(dir), inode_range_end(dir),
                          [&](std::string_view, std::string_view) -> Result<bool> {
                            empty = false;
                            return false;
                          }));
  return empty;
}

// Fails with EINVAL if `dir` is `ancestor` or lies below it (walking the parent links up).
// Walks dir's parent chain to the root. Trees have no depth limit, so the walk is bounded by the
// directories it has seen: meeting one again is a cycle (corruption), not a deep tree.
Result<void> check_not_below(Txn& txn, uint64_t dir, uint64_t ancestor) {
  std::unordered_set<uint64_t> seen;
  for (;;) {
    if (dir == ancestor) return fail(EINVAL, "cannot move a directory into its own subtree");
    if (dir == kRootIno) return {};
    if (!seen.insert(dir).second)
      return corrupt("directory " + std::to_string(dir) + ": its parent chain is a cycle");
    RAIDFS_TRY(Inode d, txn.load_inode(dir));
    dir = d.parent;
  }
}

// Drops one name of non-directory `ino`: orphans it (is_open) or destroys it at nlink 0.
Result<UnlinkResult> drop_link(Txn& txn, uint64_t ino, const OpenCheck& is_open, int64_t now) {
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  if (inode.nlink == 0) return corrupt("inode " + std::to_string(ino) + ": named but nlink 0");
  UnlinkResult r{ino, --inode.nlink, false, false};
  inode.ctime_ns = now;
  if (inode.nlink > 0) {
    txn.put_inode(inode);
  } else if (is_open(ino)) {
    txn.put_inode(inode);
    txn.put(Family::kOrphans, orphan_key(ino), encode_orphan());
    r.orphaned = true;
  } else {
    RAIDFS_CHECK(destroy_inode(txn, inode));
    r.removed = true;
  }
  return r;
}

// A directory losing its name (rmdir, or replaced by a rename): removed, or — while a handle
// is open on it — kept as an orphan with nlink 0 until the last handle goes, like a file.
Result<UnlinkResult> drop_dir(Txn& txn, Inode dir, const OpenCheck& is_open, int64_t now) {
  if (!is_open(dir.ino)) {
    RAIDFS_CHECK(destroy_inode(txn, dir));
    return UnlinkResult{dir.ino, 0, false, true};
  }
  dir.nlink = 0;
  dir.ctime_ns = now;
  txn.put_inode(dir);
  txn.put(Family::kOrphans, orphan_key(dir.ino), encode_orphan());
  return UnlinkResult{dir.ino, 0, true, false};
}

}  // namespace

Result<Inode> FsMeta::create(uint64_t parent, std::string_view name, const CreateArgs& args,
                             Durability durability) {
  RAIDFS_CHECK(check_name(name));
  const FileType type = file_type_of_mode(args.mode);
  if (type == FileType::kUnknown) return fail(EINVAL, "unknown file type in mode");
  if (type == FileType::kSymlink && args.symlink_target.empty())
    return fail(EINVAL, "empty symlink target");
  if (args.symlink_target.size() > kSymlinkBytesMax)
    return fail(ENAMETOOLONG, "symlink target longer than 4095 bytes");
  if (type != FileType::kSymlink && !args.symlink_target.empty())
    return fail(EINVAL, "symlink target for a non-symlink");

  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(Inode dir, txn.load_dir(parent));
  if (dir.nlink == 0) return fail(ENOENT, "directory has been removed");
  RAIDFS_TRY(auto existing, txn.find_dirent(parent, name));
  if (existing) return fail(EEXIST, "\"" + std::string(name) + "\" exists");
  if (type == FileType::kDirectory && dir.nlink >= kLinkMax)
    return fail(EMLINK, "too many subdirectories");

  const int64_t now = now_ns();
  Inode inode;
  RAIDFS_TRY(inode.ino, txn.take_inode_number());
  inode.mode = args.mode;
  inode.uid = args.uid;
  inode.gid = args.gid;
  inode.rdev = args.rdev;
  inode.atime_ns = inode.mtime_ns = inode.ctime_ns = now;
  inode.symlink_target = args.symlink_target;
  inode.size = type == FileType::kSymlink ? args.symlink_target.size() : 0;
  if (type == FileType::kDirectory) {
    inode.nlink = 2;
    inode.parent = parent;
    inode.next_cookie = kFirstCookie;
  } else {
    inode.nlink = 1;
  }
  txn.put_inode(inode);
  RAIDFS_CHECK(put_xattrs(txn, inode.ino, args.xattrs));
  RAIDFS_TRY(uint64_t cookie, take_cookie(txn, parent));
  txn.put_dirent(parent, name, Dirent{inode.ino, type, cookie});
  RAIDFS_CHECK(touch_dir(txn, parent, now, type == FileType::kDirectory ? 1 : 0));
  if (args.opened) args.opened(inode.ino);
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability));
  lock.unlock();
  RAIDFS_CHECK(finish(seq, durability));
  return inode;
}

Result<Inode> FsMeta::create_unnamed(uint64_t dir, const CreateArgs& args,
                                     Durability durability) {
  if (!S_ISREG(args.mode)) return fail(EINVAL, "an unnamed file must be a regular file");
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(Inode parent, txn.load_dir(dir));
  if (parent.nlink == 0) return fail(ENOENT, "directory has been removed");
  Inode inode;
  RAIDFS_TRY(inode.ino, txn.take_inode_number());
  inode.mode = args.mode;
  inode.uid = args.uid;
  inode.gid = args.gid;
  inode.atime_ns = inode.mtime_ns = inode.ctime_ns = now_ns();
  inode.nlink = 0;
  inode.flags = kInodeLinkable;
  txn.put_inode(inode);
  txn.put(Family::kOrphans, orphan_key(inode.ino), encode_orphan());
  RAIDFS_CHECK(put_xattrs(txn, inode.ino, args.xattrs));
  if (args.opened) args.opened(inode.ino);
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability));
  lock.unlock();
  RAIDFS_CHECK(finish(seq, durability));
  return inode;
}

Result<Inode> FsMeta::link(uint64_t ino, uint64_t new_parent, std::string_view new_name,
                           Durability durability) {
  RAIDFS_CHECK(check_name(new_name));
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  if (is_dir(inode)) return fail(EPERM, "cannot hard-link a directory");
  const bool first_name = inode.nlink == 0 && (inode.flags & kInodeLinkable);
  if (inode.nlink == 0 && !first_name)
    return fail(ENOENT, "inode " + std::to_string(ino) + " was unlinked");
  if (inode.nlink >= kLinkMax) return fail(EMLINK, "too many links");
  RAIDFS_TRY(Inode dir, txn.load_dir(new_parent));
  if (dir.nlink == 0) return fail(ENOENT, "directory has been removed");
  RAIDFS_TRY(auto existing, txn.find_dirent(new_parent, new_name));
  if (existing) return fail(EEXIST, "\"" + std::string(new_name) + "\" exists");

  const int64_t now = now_ns();
  ++inode.nlink;
  inode.ctime_ns = now;
  if (first_name) {  // an O_TMPFILE file named: an ordinary file from now on
    inode.flags &= ~kInodeLinkable;
    txn.del(Family::kOrphans, orphan_key(ino));
  }
  txn.put_inode(inode);
  RAIDFS_TRY(uint64_t cookie, take_cookie(txn, new_parent));
  txn.put_dirent(new_parent, new_name, Dirent{ino, file_type_of_mode(inode.mode), cookie});
  RAIDFS_CHECK(touch_dir(txn, new_parent, now, 0));
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability));
  lock.unlock();
  RAIDFS_CHECK(finish(seq, durability));
  return inode;
}

Result<UnlinkResult> FsMeta::unlink(uint64_t parent, std::string_view name, const OpenCheck& is_open,
                                    Durability durability) {
  RAIDFS_CHECK(check_name(name));
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_CHECK(txn.load_dir(parent));
  RAIDFS_TRY(auto d, txn.find_dirent(parent, name));
  if (!d) return fail(ENOENT, "no entry \"" + std::string(name) + "\"");
  if (d->type == FileType::kDirectory) return fail(EISDIR, "\"" + std::string(name) + "\" is a directory");
  const int64_t now = now_ns();
  txn.del_dirent(parent, name, *d);
  RAIDFS_TRY(UnlinkResult r, drop_link(txn, d->child, is_open, now));
  RAIDFS_CHECK(touch_dir(txn, parent, now, 0));
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability, Room::kFreeing));
  lock.unlock();
  RAIDFS_CHECK(finish(seq, durability));
  return r;
}

Result<void> FsMeta::rmdir(uint64_t parent, std::string_view name, const OpenCheck& is_open,
                           Durability durability) {
  RAIDFS_CHECK(check_name(name));
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_CHECK(txn.load_dir(parent));
  RAIDFS_TRY(auto d, txn.find_dirent(parent, name));
  if (!d) return fail(ENOENT, "no entry \"" + std::string(name) + "\"");
  RAIDFS_TRY(Inode child, txn.load_inode(d->child));
  if (!is_dir(child)) return fail(ENOTDIR, "\"" + std::string(name) + "\" is not a directory");
  if (child.ino == kRootIno) return fail(EBUSY, "cannot remove the root");
  RAIDFS_TRY(bool empty, dir_is_empty(*store_, child.ino));
  if (!empty) return fail(ENOTEMPTY, "directory \"" + std::string(name) + "\" is not empty");
  const int64_t now = now_ns();
  txn.del_dirent(parent, name, *d);
  RAIDFS_CHECK(drop_dir(txn, child, is_open, now));
  RAIDFS_CHECK(touch_dir(txn, parent, now, -1));
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability, Room::kFreeing));
  lock.unlock();
  return finish(seq, durability);
}

Result<std::optional<UnlinkResult>> FsMeta::rename(uint64_t old_parent, std::string_view old_name,
                                                   uint64_t new_parent, std::string_view new_name,
                                                   unsigned flags, const OpenCheck& target_open,
                                                   Durability durability) {
  using Out = std::optional<UnlinkResult>;
  if ((flags & ~unsigned{kRenameNoReplace | kRenameExchange}) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange))
    return fail(EINVAL, "bad rename flags");
  RAIDFS_CHECK(check_name(old_name));
  RAIDFS_CHECK(check_name(new_name));
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_CHECK(txn.load_dir(old_parent));
  RAIDFS_TRY(Inode np, txn.load_dir(new_parent));
  if (np.nlink == 0) return fail(ENOENT, "target directory has been removed");
  RAIDFS_TRY(auto src, txn.find_dirent(old_parent, old_name));
  if (!src) return fail(ENOENT, "no entry \"" + std::string(old_name) + "\"");
  RAIDFS_TRY(auto dst, txn.find_dirent(new_parent, new_name));
  const bool src_dir = src->type == FileType::kDirectory;
  const bool dst_dir = dst && dst->type == FileType::kDirectory;
  const bool same_slot = old_parent == new_parent && old_name == new_name;
  const int64_t now = now_ns();
  Out replaced;

  if (flags & kRenameExchange) {
    if (!dst) return fail(ENOENT, "no entry \"" + std::string(new_name) + "\"");
    if (same_slot || src->child == dst->child) return Out();
    if (old_parent != new_parent) {
      if (src_dir) RAIDFS_CHECK(check_not_below(txn, new_parent, src->child));
      if (dst_dir) RAIDFS_CHECK(check_not_below(txn, old_parent, dst->child));
    }
    // Each name keeps its slot and cookie and now names the other inode.
    txn.put_dirent(old_parent, old_name, Dirent{dst->child, dst->type, src->cookie});
    txn.put_dirent(new_parent, new_name, Dirent{src->child, src->type, dst->cookie});
    if (old_parent != new_parent) {
      const int moved = (src_dir ? 1 : 0) - (dst_dir ? 1 : 0);  // subdirs old_parent → new_parent
      RAIDFS_CHECK(touch_dir(txn, old_parent, now, -moved));
      RAIDFS_CHECK(touch_dir(txn, new_parent, now, moved));
      if (src_dir) RAIDFS_CHECK(mutate(txn, src->child, [&](Inode& i) { i.parent = new_parent; }));
      if (dst_dir) RAIDFS_CHECK(mutate(txn, dst->child, [&](Inode& i) { i.parent = old_parent; }));
    } else {
      RAIDFS_CHECK(touch_dir(txn, old_parent, now, 0));
    }
    RAIDFS_CHECK(mutate(txn, src->child, [&](Inode& i) { i.ctime_ns = now; }));
    RAIDFS_CHECK(mutate(txn, dst->child, [&](Inode& i) { i.ctime_ns = now; }));
  } else {
    if (same_slot) return Out();
    if (dst) {
      if (flags & kRenameNoReplace) return fail(EEXIST, "\"" + std::string(new_name) + "\" exists");
      if (dst->child == src->child) return Out();  // two names of one inode: nothing to do
      if (src_dir && !dst_dir) return fail(ENOTDIR, "cannot replace a non-directory with a directory");
      if (!src_dir && dst_dir) return fail(EISDIR, "cannot replace a directory with a non-directory");
    }
    if (src_dir && old_parent != new_parent) {
      RAIDFS_CHECK(check_not_below(txn, new_parent, src->child));
      if (!dst_dir && np.nlink >= kLinkMax) return fail(EMLINK, "too many subdirectories");
    }
    if (dst_dir) {
      RAIDFS_TRY(bool empty, dir_is_empty(*store_, dst->child));
      if (!empty) return fail(ENOTEMPTY, "directory \"" + std::string(new_name) + "\" is not empty");
    }
    // Remove the old name, then the target's (if any), then add the new name: in the same
    // directory at the old name's cookie, so that a readdir going on meets the entry once (at
    // its place, under one name or the other), elsewhere with a new cookie of the target's.
    txn.del_dirent(old_parent, old_name, *src);
    if (dst) {
      txn.del_dirent(new_parent, new_name, *dst);
      if (dst_dir) {
        RAIDFS_TRY(Inode victim, txn.load_inode(dst->child));
        RAIDFS_TRY(replaced, drop_dir(txn, victim, target_open, now));
        RAIDFS_CHECK(touch_dir(txn, new_parent, now, -1));
      } else {
        RAIDFS_TRY(replaced, drop_link(txn, dst->child, target_open, now));
      }
    }
    uint64_t cookie = src->cookie;
    if (new_parent != old_parent) {
      RAIDFS_TRY(cookie, take_cookie(txn, new_parent));
    }
    txn.put_dirent(new_parent, new_name, Dirent{src->child, src->type, cookie});
    const int moved = src_dir && old_parent != new_parent ? 1 : 0;
    RAIDFS_CHECK(touch_dir(txn, old_parent, now, -moved));
    if (new_parent != old_parent) RAIDFS_CHECK(touch_dir(txn, new_parent, now, moved));
    RAIDFS_CHECK(mutate(txn, src->child, [&](Inode& i) {
      i.ctime_ns = now;
      if (src_dir) i.parent = new_parent;
    }));
  }
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability));
  lock.unlock();
  RAIDFS_CHECK(finish(seq, durability));
  return replaced;
}

Result<Inode> FsMeta::setattr(uint64_t ino, const SetAttr& attr, Durability durability) {
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  if (attr.size && *attr.size != inode.size) {
    if (is_dir(inode)) return fail(EISDIR, "cannot change the size of a directory");
    if (!is_reg(inode)) return fail(EINVAL, "cannot change the size of a special file");
    if (*attr.size < inode.size) {
      RAIDFS_TRY(const int64_t blocks, remove_extents_from(txn, ino, *attr.size));
      add_blocks(inode, blocks);
      RAIDFS_CHECK(apply_live_deltas(txn));
    }
    inode.size = *attr.size;
    inode.mtime_ns = now_ns();
  }
  if (attr.mode) inode.mode = (inode.mode & S_IFMT) | (*attr.mode & 07777);
  if (attr.kill_set_id && !is_dir(inode)) {
    inode.mode &= ~uint32_t{S_ISUID};
    if (inode.mode & S_IXGRP) inode.mode &= ~uint32_t{S_ISGID};
    txn.del(Family::kXattrs, xattr_key(ino, kCapabilityXattr));
  }
  if (attr.uid) inode.uid = *attr.uid;
  if (attr.gid) inode.gid = *attr.gid;
  if (attr.atime_ns) inode.atime_ns = *attr.atime_ns;
  if (attr.mtime_ns) inode.mtime_ns = *attr.mtime_ns;
  inode.ctime_ns = attr.ctime_ns ? *attr.ctime_ns : now_ns();
  txn.put_inode(inode);
  for (const auto& [name, value] : attr.xattrs) {
    RAIDFS_CHECK(check_xattr_name(name));
    if (!value) {
      txn.del(Family::kXattrs, xattr_key(ino, name));
      continue;
    }
    if (value->size() > kXattrValueBytesMax) return fail(E2BIG, "xattr value larger than 64 KiB");
    txn.put(Family::kXattrs, xattr_key(ino, name), encode_xattr(*value));
  }
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability, attr.size ? Room::kFreeing : Room::kOrdinary));
  lock.unlock();
  RAIDFS_CHECK(finish(seq, durability));
  return inode;
}

Result<bool> FsMeta::release(uint64_t ino, const OpenCheck& is_open, Durability durability) {
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(auto inode, txn.find_inode(ino));
  if (!inode || inode->nlink != 0) return false;
  RAIDFS_TRY(auto orphan, txn.get(Family::kOrphans, orphan_key(ino)));
  if (!orphan || is_open(ino)) return false;
  RAIDFS_CHECK(destroy_inode(txn, *inode));
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability, Room::kFreeing));
  lock.unlock();
  RAIDFS_CHECK(finish(seq, durability));
  return true;
}

// --- xattrs --------------------------------------------------------------------------------------

Result<void> FsMeta::set_xattr(uint64_t ino, std::string_view name, std::string_view value,
                               int flags, Durability durability) {
  RAIDFS_CHECK(check_xattr_name(name));
  if (value.size() > kXattrValueBytesMax) return fail(E2BIG, "xattr value larger than 64 KiB");
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return fail(EINVAL, "bad xattr flags");
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  RAIDFS_TRY(auto old, txn.get(Family::kXattrs, xattr_key(ino, name)));
  if (old && (flags & XATTR_CREATE)) return fail(EEXIST, "xattr exists");
  if (!old && (flags & XATTR_REPLACE)) return fail(ENODATA, "no such xattr");
  txn.put(Family::kXattrs, xattr_key(ino, name), encode_xattr(value));
  inode.ctime_ns = now_ns();
  txn.put_inode(inode);
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability));
  lock.unlock();
  return finish(seq, durability);
}

Result<std::string> FsMeta::get_xattr(uint64_t ino, std::string_view name) const {
  RAIDFS_CHECK(check_xattr_name(name));
  Txn txn(*store_);
  RAIDFS_TRY(auto v, txn.get(Family::kXattrs, xattr_key(ino, name)));
  if (!v) {
    RAIDFS_CHECK(txn.load_inode(ino));
    return fail(ENODATA, "no such xattr");
  }
  return decode_xattr(*v);
}

Result<std::vector<std::string>> FsMeta::list_xattrs(uint64_t ino) const {
  Txn txn(*store_);
  RAIDFS_CHECK(txn.load_inode(ino));
  std::vector<std::string> names;
  RAIDFS_CHECK(store_->scan(Family::kXattrs, u64_key(ino), inode_range_end(ino),
                            [&](std::string_view key, std::string_view) -> Result<bool> {
                              RAIDFS_TRY(auto k, parse_u64_name_key(key));
                              names.emplace_back(k.second);
                              return true;
                            }));
  return names;
}

Result<void> FsMeta::remove_xattr(uint64_t ino, std::string_view name, Durability durability) {
  RAIDFS_CHECK(check_xattr_name(name));
  std::unique_lock lock(mu_);
  Txn txn(*store_);
  RAIDFS_TRY(Inode inode, txn.load_inode(ino));
  RAIDFS_TRY(auto old, txn.get(Family::kXattrs, xattr_key(ino, name)));
  if (!old) return fail(ENODATA, "no such xattr");
  txn.del(Family::kXattrs, xattr_key(ino, name));
  inode.ctime_ns = now_ns();
  txn.put_inode(inode);
  RAIDFS_TRY(uint64_t seq, write_locked(txn, durability, Room::kFreeing));
  lock.unlock();
  return finish(seq, durability);
}

}  // namespace raidfs::meta
