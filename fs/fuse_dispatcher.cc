// RequestDispatcher: see fuse_dispatcher.h. Each handler decodes its request (every length
// checked), calls the Filesystem, and fills the reply; errors travel up as values and become
// the reply's errno in one place, dispatch().
#include "fs/fuse_dispatcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>

#include "base/file_clock.h"
#include "base/log.h"
#include "fs/fuse_encode.h"

namespace raidfs::fs {
namespace {

using fuse::PayloadReader;
using fuse::read_struct;

constexpr uint32_t kMaxWriteMin = 4096;
constexpr uint32_t kMaxWriteMax = 16u << 20;  // max_pages must fit the kernel's u16
constexpr uint16_t kMaxBackground = 64;
constexpr uint16_t kCongestionThreshold = 48;  // 3/4 of max_background, as libfuse

static_assert(FUSE_ROOT_ID == meta::kRootIno);
static_assert(meta::kRenameNoReplace == RENAME_NOREPLACE &&
              meta::kRenameExchange == RENAME_EXCHANGE);

// INIT's first four fields: present in every protocol version's fuse_init_in.
struct InitInHead {
  uint32_t major, minor, max_readahead, flags;
};

// SETXATTR's struct without FUSE_SETXATTR_EXT (which raidfs does not ask for).
struct SetxattrInCompat {
  uint32_t size, flags;
};
static_assert(sizeof(SetxattrInCompat) == FUSE_COMPAT_SETXATTR_IN_SIZE);

bool takes_no_reply(uint32_t opcode) {
  return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
         opcode == FUSE_NOTIFY_REPLY;
}

// Errors that mean the array or its metadata failed (worth a log line), not that the caller
// asked for something impossible (ENOENT, EEXIST ...: the application sees those).
bool is_eio_class(int code) {
  return code == EIO || code == EUCLEAN || code == EBADMSG || code == ENOTRECOVERABLE;
}

// For log lines only.
const char* opcode_name(uint32_t opcode) {
  static constexpr const char* kNames[] = {
      nullptr,        "LOOKUP",        "FORGET",      "GETATTR",  "SETATTR",  "READLINK",
      "SYMLINK",      nullptr,         "MKNOD",       "MKDIR",    "UNLINK",   "RMDIR",
      "RENAME",       "LINK",          "OPEN",        "READ",     "WRITE",    "STATFS",
      "RELEASE",      nullptr,         "FSYNC",       "SETXATTR", "GETXATTR", "LISTXATTR",
      "REMOVEXATTR",  "FLUSH",         "INIT",        "OPENDIR",  "READDIR",  "RELEASEDIR",
      "FSYNCDIR",     "GETLK",         "SETLK",       "SETLKW",   "ACCESS",   "CREATE",
      "INTERRUPT",    "BMAP",          "DESTROY",     "IOCTL",    "POLL",     "NOTIFY_REPLY",
      "BATCH_FORGET", "FALLOCATE",     "READDIRPLUS", "RENAME2",  "LSEEK",    "COPY_FILE_RANGE",
      "SETUPMAPPING", "REMOVEMAPPING", "SYNCFS",      "TMPFILE",  "STATX",
  };
  static_assert(sizeof kNames / sizeof kNames[0] == fuse::kOpStatx + 1);
  const char* name = opcode < std::size(kNames) ? kNames[opcode] : nullptr;
  return name != nullptr ? name : "unknown";
}

// The fh of a handle that may write (any other handle's is 0).
constexpr uint64_t kWritableHandle = 1;

}  // namespace

// One request being handled: the decoded view, the reply being built, and a handler per opcode.
struct RequestDispatcher::Call {
  RequestDispatcher& d;
  IoContext& ctx;
  const RequestView& req;
  std::span<uint8_t> buffer;
  Reply& reply;

  Filesystem& fs() { return d.fs_; }
  uint64_t nodeid() const { return req.header.nodeid; }
  PayloadReader payload() const { return PayloadReader(req.payload); }
  fuse::Timeout entry_valid() const { return fuse::split_timeout(d.options_.entry_timeout); }
  fuse::Timeout attr_valid() const { return fuse::split_timeout(d.options_.attr_timeout); }
  // The root's virtual xattrs: the admin channel (Filesystem::kStatusXattr and the others).
  bool is_status_xattr(std::string_view name) const {
    return nodeid() == meta::kRootIno &&
           (name == Filesystem::kStatusXattr || name == Filesystem::kStatusJsonXattr ||
            name == Filesystem::kControlXattr);
  }

  // --- reply bodies ----------------------------------------------------------------------------
  template <class T>
  void put_fixed(const T& value, size_t at = 0) {
    static_assert(std::is_trivially_copyable_v<T>);
    assert(at + sizeof(T) <= Reply::kFixedBytesMax);
    std::memcpy(reply.fixed + at, &value, sizeof(T));
    reply.fixed_bytes = static_cast<uint32_t>(at + sizeof(T));
  }
  void put_entry(const meta::Inode& inode) {
    put_fixed(fuse::entry_out(inode, entry_valid(), attr_valid()));
  }
  void put_attr(const meta::Inode& inode) {
    fuse_attr_out out{};
    const fuse::Timeout t = attr_valid();
    out.attr_valid = t.sec;
    out.attr_valid_nsec = t.nsec;
    fuse::fill_attr(inode, out.attr);
    put_fixed(out);
  }
  // fh: whether the handle counts as a writer (fs/open_files.h), handed back in RELEASE; raidfs
  // keeps no other per-handle state. KEEP_CACHE: only this mount changes the files, so
  // the page cache stays valid across opens. A handle opened for writing on a nearly full array
  // bypasses the page cache (DIRECT_IO): its writes reach raidfs at once, so a writer that fills
  // the array hears ENOSPC at the write, not at a close long after the kernel took gigabytes it
  // could never store.
  void put_open(bool writing) {
    fuse_open_out out{};
    out.fh = writing ? kWritableHandle : 0;
    out.open_flags = writing && fs().nearly_full() ? FOPEN_DIRECT_IO : FOPEN_KEEP_CACHE;
    put_fixed(out, reply.fixed_bytes);
  }
  // Puts `bytes` at the start of the reply buffer as the reply's data.
  Result<void> put_data(std::string_view bytes, int too_big_code) {
    if (bytes.size() > buffer.size())
      return fail(too_big_code, "reply larger than the reply buffer");
    std::memcpy(buffer.data(), bytes.data(), bytes.size());
    reply.data = buffer.data();
    reply.data_bytes = bytes.size();
    return {};
  }
  // The size-probe protocol of GETXATTR and LISTXATTR: size 0 asks for the length only.
  Result<void> put_sized(std::string_view value, uint32_t size) {
    if (size == 0) {
      fuse_getxattr_out out{};
      out.size = static_cast<uint32_t>(std::min<size_t>(value.size(), UINT32_MAX));
      put_fixed(out);
      return {};
    }
    if (value.size() > size) return fail(ERANGE, "buffer too small");
    return put_data(value, ERANGE);
  }

  // New inodes get the caller's uid and gid, except that a set-group-ID directory hands on its
  // group (and, to new subdirectories, the set-group-ID bit), as POSIX filesystems do. A new
  // non-directory keeps S_ISGID only if its creator belongs to its group; without the caller's
  // supplementary groups, "belongs" is approximated by root or the primary group.
  // `umask`: the creator's, sent by the kernel; raidfs applies it only when it asked the kernel
  // not to (FUSE_DONT_MASK: a parent's default ACL replaces the umask).
  Result<Caller> creator(uint32_t& mode, bool is_dir, uint32_t umask) {
    const bool dont_mask = (d.connection().flags & FUSE_DONT_MASK) != 0;
    Caller caller{req.header.uid, req.header.gid, dont_mask ? umask : 0};
    RAIDFS_TRY(const meta::Inode parent, fs().getattr(nodeid()));
    if (parent.mode & S_ISGID) {
      caller.gid = parent.gid;
      if (is_dir) mode |= S_ISGID;
    }
    if (!is_dir && (mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && req.header.uid != 0 &&
        req.header.gid != caller.gid)
      mode &= ~static_cast<uint32_t>(S_ISGID);
    return caller;
  }

  Result<void> run();

  // --- handlers, in opcode order ---------------------------------------------------------------
  Result<void> init();
  Result<void> lookup() {
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    if (name == "." || name == "..") {
      // Export support (NFS, open_by_handle_at): the kernel looks up "." of an inode it no
      // longer caches, and ".." of a directory. Inode numbers are never reused, so a removed
      // one answers ENOENT and the handle is stale.
      RAIDFS_TRY(meta::Inode self, fs().getattr(nodeid()));
      if (name == "..") {
        if (!S_ISDIR(self.mode)) return fail(ENOTDIR, "'..' of a file");
        RAIDFS_TRY(self, fs().getattr(self.parent));
      }
      put_entry(self);
      return {};
    }
    auto inode = fs().lookup(nodeid(), name);
    if (!inode && inode.error().code == ENOENT && d.options_.entry_timeout > 0) {
      // A negative entry: the kernel remembers the absence for entry_timeout (only this mount
      // creates names, and creating one replaces the negative entry).
      put_fixed(fuse::negative_entry_out(entry_valid()));
      return {};
    }
    if (!inode) return std::unexpected(inode.error());
    put_entry(*inode);
    return {};
  }
  Result<void> getattr() {
    RAIDFS_TRY(const meta::Inode inode, fs().getattr(nodeid()));
    put_attr(inode);
    return {};
  }
  Result<void> setattr();
  Result<void> readlink() {
    RAIDFS_TRY(const std::string target, fs().readlink(nodeid()));
    return put_data(target, ENAMETOOLONG);
  }
  Result<void> symlink() {
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    RAIDFS_TRY(const std::string_view target, reader.name());
    uint32_t mode = S_IFLNK | 0777;
    RAIDFS_TRY(const Caller caller, creator(mode, false, 0));
    RAIDFS_TRY(const meta::Inode inode, fs().symlink(nodeid(), name, target, caller));
    put_entry(inode);
    return {};
  }
  Result<void> mknod() {
    RAIDFS_TRY(const fuse_mknod_in in, read_struct<fuse_mknod_in>(req.op));
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    uint32_t mode = in.mode;
    RAIDFS_TRY(const Caller caller, creator(mode, false, in.umask));
    RAIDFS_TRY(const meta::Inode inode, fs().mknod(nodeid(), name, mode, in.rdev, caller));
    put_entry(inode);
    return {};
  }
  Result<void> mkdir() {
    RAIDFS_TRY(const fuse_mkdir_in in, read_struct<fuse_mkdir_in>(req.op));
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    uint32_t mode = in.mode & 07777;  // the kernel leaves S_IFDIR out; mkdir adds it
    RAIDFS_TRY(const Caller caller, creator(mode, true, in.umask));
    RAIDFS_TRY(const meta::Inode inode, fs().mkdir(nodeid(), name, mode, caller));
    put_entry(inode);
    return {};
  }
  Result<void> unlink() {
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    return fs().unlink(nodeid(), name);
  }
  Result<void> rmdir() {
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    return fs().rmdir(nodeid(), name);
  }
  Result<void> rename(uint64_t new_dir, uint32_t flags) {
    if (flags & ~static_cast<uint32_t>(RENAME_NOREPLACE | RENAME_EXCHANGE))
      return fail(EINVAL, "unsupported rename flags");
    auto reader = payload();
    RAIDFS_TRY(const std::string_view old_name, reader.name());
    RAIDFS_TRY(const std::string_view new_name, reader.name());
    return fs().rename(ctx, nodeid(), old_name, new_dir, new_name, flags);
  }
  Result<void> link() {
    RAIDFS_TRY(const fuse_link_in in, read_struct<fuse_link_in>(req.op));
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    RAIDFS_TRY(const meta::Inode inode, fs().link(in.oldnodeid, nodeid(), name));
    put_entry(inode);
    return {};
  }
  Result<void> open() {
    RAIDFS_TRY(const fuse_open_in in, read_struct<fuse_open_in>(req.op));
    RAIDFS_CHECK(fs().open(nodeid(), static_cast<int>(in.flags)));
    put_open((in.flags & O_ACCMODE) != O_RDONLY);
    return {};
  }
  Result<void> read() {
    RAIDFS_TRY(const fuse_read_in in, read_struct<fuse_read_in>(req.op));
    // Filesystem::read writes whole 4 KiB blocks: the buffer must hold `size` rounded up.
    const size_t room = buffer.size() / 4096 * 4096;
    const size_t size = std::min<size_t>(in.size, room);
    RAIDFS_TRY(const size_t n, fs().read(ctx, nodeid(), in.offset, size, buffer.data()));
    reply.data = buffer.data();
    reply.data_bytes = std::min(n, size);
    return {};
  }
  Result<void> write() {
    RAIDFS_TRY(const fuse_write_in in, read_struct<fuse_write_in>(req.op));
    if (req.payload.size() != in.size) return fail(EINVAL, "WRITE size disagrees with its data");
    // FUSE_HANDLE_KILLPRIV_V2 (see init): the kernel asks raidfs to clear set-ID bits and, as it
    // does not refresh the mode after a WRITE, is told when they went; otherwise a set-user-ID
    // file could still be run with its old mode from the cache after a user changed it.
    if (in.write_flags & FUSE_WRITE_KILL_SUIDGID) {
      RAIDFS_TRY(const bool killed, fs().kill_set_id(nodeid()));
      if (killed) d.invalidate_attributes(nodeid());
    }
    RAIDFS_TRY(const size_t n, fs().write(ctx, nodeid(), in.offset, req.payload));
    fuse_write_out out{};
    out.size = static_cast<uint32_t>(std::min<size_t>(n, in.size));
    put_fixed(out);
    return {};
  }
  Result<void> statfs() {
    const FsStatfs s = fs().statfs();
    fuse_statfs_out out{};
    out.st.blocks = s.blocks;
    out.st.bfree = s.blocks_free;
    out.st.bavail = s.blocks_free;
    out.st.files = s.files;
    out.st.ffree = s.files_free;
    out.st.bsize = static_cast<uint32_t>(s.block_size);
    out.st.frsize = static_cast<uint32_t>(s.block_size);
    out.st.namelen = s.name_max;
    put_fixed(out);
    return {};
  }
  Result<void> setxattr() {
    RAIDFS_TRY(const SetxattrInCompat in, read_struct<SetxattrInCompat>(req.op));
    const auto flags = static_cast<int>(in.flags);
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    RAIDFS_TRY(const auto value, reader.take(in.size));
    if (reader.remaining() != 0) return fail(EINVAL, "SETXATTR value longer than its size");
    if (is_status_xattr(name)) {
      if (name != Filesystem::kControlXattr) return fail(EPERM, "raidfs.status is read-only");
      const std::string_view command(reinterpret_cast<const char*>(value.data()), value.size());
      RAIDFS_CHECK(fs().control(Caller{req.header.uid, req.header.gid}, command));
      return {};
    }
    return fs().set_xattr(
        nodeid(), name, std::string_view(reinterpret_cast<const char*>(value.data()), value.size()),
        flags);
  }
  Result<void> getxattr() {
    RAIDFS_TRY(const fuse_getxattr_in in, read_struct<fuse_getxattr_in>(req.op));
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    std::string value;
    if (is_status_xattr(name) && name == Filesystem::kStatusXattr) {
      value = fs().status_text();
      if (d.transport_status_) value += d.transport_status_();
    } else if (is_status_xattr(name) && name == Filesystem::kStatusJsonXattr) {
      value = fs().status_json();
    } else if (is_status_xattr(name)) {
      return fail(ENODATA, "the control xattr is written, not read");
    } else {
      RAIDFS_TRY(value, fs().get_xattr(nodeid(), name));
    }
    return put_sized(value, in.size);
  }
  Result<void> listxattr() {
    RAIDFS_TRY(const fuse_getxattr_in in, read_struct<fuse_getxattr_in>(req.op));
    RAIDFS_TRY(const std::vector<std::string> names, fs().list_xattrs(nodeid()));
    std::string list;  // name NUL name NUL ...
    for (const std::string& name : names) {
      if (is_status_xattr(name)) continue;  // virtual and unlisted
      list += name;
      list += '\0';
    }
    return put_sized(list, in.size);
  }
  Result<void> removexattr() {
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    if (is_status_xattr(name)) return fail(EPERM, "raidfs.status is read-only");
    return fs().remove_xattr(nodeid(), name);
  }
  Result<void> opendir() {
    RAIDFS_TRY(const fuse_open_in in, read_struct<fuse_open_in>(req.op));
    (void)in;
    // Counted as an open handle: a directory removed while open lives on until RELEASEDIR.
    RAIDFS_CHECK(fs().open(nodeid(), O_RDONLY));
    put_fixed(fuse_open_out{});
    return {};
  }
  Result<void> readdir(bool plus);
  // O_TMPFILE: CREATE's request and reply; the name the kernel sends ("/") is not used.
  Result<void> tmpfile() {
    RAIDFS_TRY(const fuse_create_in in, read_struct<fuse_create_in>(req.op));
    uint32_t mode = (in.mode & 07777) | S_IFREG;
    RAIDFS_TRY(const Caller caller, creator(mode, false, in.umask));
    RAIDFS_TRY(const meta::Inode inode, fs().tmpfile(nodeid(), mode, caller));
    put_entry(inode);
    put_open(true);
    return {};
  }
  Result<void> create() {
    RAIDFS_TRY(const fuse_create_in in, read_struct<fuse_create_in>(req.op));
    auto reader = payload();
    RAIDFS_TRY(const std::string_view name, reader.name());
    uint32_t mode = (in.mode & 07777) | S_IFREG;
    RAIDFS_TRY(const Caller caller, creator(mode, false, in.umask));
    RAIDFS_TRY(const meta::Inode inode, fs().create(nodeid(), name, mode, caller));
    put_entry(inode);
    put_open(true);  // after the entry: CREATE's reply is fuse_entry_out then fuse_open_out
    return {};
  }
  Result<void> fallocate() {
    RAIDFS_TRY(const fuse_fallocate_in in, read_struct<fuse_fallocate_in>(req.op));
    return fs().fallocate(ctx, nodeid(), static_cast<int>(in.mode), in.offset, in.length);
  }
  Result<void> lseek() {
    RAIDFS_TRY(const fuse_lseek_in in, read_struct<fuse_lseek_in>(req.op));
    // The kernel answers SEEK_SET/CUR/END itself; only the data/hole queries come here.
    if (in.whence != SEEK_DATA && in.whence != SEEK_HOLE) return fail(EINVAL, "lseek whence");
    // With the writeback cache the kernel may hold written data this daemon has not seen (it
    // does not write it back before asking): an answer from here could call that data a hole
    // (SEEK_DATA → ENXIO after a plain pwrite), and cp/tar --sparse would then skip it. ENOSYS
    // makes the kernel answer itself from then on: all data up to its size, a hole at the end.
    if (d.connection_.flags & FUSE_WRITEBACK_CACHE)
      return fail(ENOSYS, "SEEK_DATA/SEEK_HOLE under the writeback cache are the kernel's");
    RAIDFS_TRY(const uint64_t offset, fs().lseek(nodeid(), in.offset, static_cast<int>(in.whence)));
    fuse_lseek_out out{};
    out.offset = offset;
    put_fixed(out);
    return {};
  }
};

Result<void> RequestDispatcher::Call::init() {
  RAIDFS_TRY(const InitInHead in, read_struct<InitInHead>(req.op));
  uint64_t kernel_flags = in.flags;
  if ((in.flags & FUSE_INIT_EXT) &&
      req.op.size() >= offsetof(fuse_init_in, flags2) + sizeof(uint32_t)) {
    uint32_t flags2 = 0;
    std::memcpy(&flags2, req.op.data() + offsetof(fuse_init_in, flags2), sizeof flags2);
    kernel_flags |= static_cast<uint64_t>(flags2) << 32;
  }
  if (in.major < FUSE_KERNEL_VERSION)
    return fail(EPROTO, "kernel FUSE protocol " + std::to_string(in.major) + "." +
                            std::to_string(in.minor) + " is too old");
  fuse_init_out out{};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = fuse::kProtocolMinor;
  if (in.major > FUSE_KERNEL_VERSION) {
    // The protocol's rule: answer with our major only; the kernel then sends INIT again.
    put_fixed(out);
    return {};
  }
  if (in.minor < fuse::kMinKernelMinor)
    return fail(EPROTO, "kernel FUSE protocol 7." + std::to_string(in.minor) + " is older than 7." +
                            std::to_string(fuse::kMinKernelMinor) +
                            " (Linux 4.20), the oldest raidfs serves");
  // FUSE_ASYNC_DIO only when asked: with it the kernel (checked on 6.18) completes an
  // asynchronous O_DIRECT write without invalidating the page cache after it, so a buffered read
  // racing the write leaves the old bytes cached for good (docs/decisions.md).
  // DIRECT_IO_ALLOW_MMAP: a handle opened with FOPEN_DIRECT_IO (see put_open) may still be
  // mmapped shared.
  // HANDLE_KILLPRIV_V2: raidfs clears set-ID bits itself on WRITE (FUSE_WRITE_KILL_SUIDGID) and
  // SETATTR (FATTR_KILL_SUIDGID; an O_TRUNC open truncates through SETATTR, as ATOMIC_O_TRUNC is
  // not asked for, so FUSE_OPEN_KILL_SUIDGID needs nothing more). In return the kernel marks the
  // superblock SB_NOSEC and stops asking for security.capability before every write of a file
  // it has seen without one — a whole request saved per write (docs/decisions.md).
  uint64_t want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_DO_READDIRPLUS |
                  FUSE_READDIRPLUS_AUTO | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT |
                  FUSE_DIRECT_IO_ALLOW_MMAP | FUSE_EXPORT_SUPPORT | FUSE_HANDLE_KILLPRIV_V2;
  if (d.options_.writeback_cache) want |= FUSE_WRITEBACK_CACHE;
  if (d.options_.async_dio) want |= FUSE_ASYNC_DIO;
  if (d.options_.posix_acl) want |= FUSE_POSIX_ACL | FUSE_DONT_MASK;
  if (d.options_.over_io_uring) want |= FUSE_OVER_IO_URING;
  const uint64_t granted = kernel_flags & want;

  const uint32_t max_write = d.options_.max_write;  // clamped by the constructor
  FuseConnection c;
  c.minor = std::min(in.minor, fuse::kProtocolMinor);
  c.flags = granted;
  c.max_write = max_write;
  c.max_pages = max_write / 4096;
  c.max_readahead = in.max_readahead;

  out.minor = c.minor;
  out.max_readahead = in.max_readahead;
  out.flags = static_cast<uint32_t>(granted);
  out.flags2 = static_cast<uint32_t>(granted >> 32);
  out.max_background = kMaxBackground;
  out.congestion_threshold = kCongestionThreshold;
  out.max_write = max_write;
  out.time_gran = 1;
  out.max_pages = static_cast<uint16_t>(c.max_pages);
  put_fixed(out);

  {
    // The kernel sends INIT once; a second one (a confused or hostile peer) changes nothing.
    std::lock_guard lock(d.init_mu_);
    if (d.initialized()) return fail(EINVAL, "INIT twice");
    d.connection_ = c;
    d.initialized_.store(true, std::memory_order_release);
  }
  // With the writeback cache the kernel keeps mtime/ctime and sends them in SETATTR.
  d.fs_.set_write_times((granted & FUSE_WRITEBACK_CACHE) ? WriteTimes::kKeptByKernel
                                                          : WriteTimes::kSetByWrite);
  // Both or neither: with ACLs the umask is raidfs's to apply (a default ACL replaces it).
  d.fs_.set_posix_acl((granted & FUSE_POSIX_ACL) && (granted & FUSE_DONT_MASK));
  RAIDFS_LOG(
      kInfo, "FUSE protocol 7.%u (kernel 7.%u), max_write %u, flags 0x%llx%s", c.minor, in.minor,
      c.max_write, static_cast<unsigned long long>(granted),
      d.options_.over_io_uring && !c.over_io_uring() ? ", io_uring not offered by the kernel" : "");
  return {};
}

Result<void> RequestDispatcher::Call::setattr() {
  RAIDFS_TRY(const fuse_setattr_in in, read_struct<fuse_setattr_in>(req.op));
  meta::SetAttr attr;
  if (in.valid & FATTR_MODE) attr.mode = in.mode & 07777;
  if (in.valid & FATTR_UID) attr.uid = in.uid;
  if (in.valid & FATTR_GID) attr.gid = in.gid;
  if (in.valid & FATTR_SIZE) attr.size = in.size;
  // A truncate by a caller without CAP_FSETID, or a chown (FUSE_HANDLE_KILLPRIV_V2).
  attr.kill_set_id = (in.valid & FATTR_KILL_SUIDGID) != 0;
  if (in.valid & (FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
    const int64_t now = file_time_now_ns();
    if (in.valid & FATTR_ATIME_NOW) attr.atime_ns = now;
    if (in.valid & FATTR_MTIME_NOW) attr.mtime_ns = now;
  }
  if ((in.valid & FATTR_ATIME) && !(in.valid & FATTR_ATIME_NOW)) {
    RAIDFS_TRY(attr.atime_ns, fuse::join_time(in.atime, in.atimensec));
  }
  if ((in.valid & FATTR_MTIME) && !(in.valid & FATTR_MTIME_NOW)) {
    RAIDFS_TRY(attr.mtime_ns, fuse::join_time(in.mtime, in.mtimensec));
  }
  // FATTR_CTIME: the kernel's own ctime (the writeback cache's, for the writes it flushes),
  // stored as sent so that the time shown while mounted is the one kept. FATTR_FH and
  // FATTR_LOCKOWNER carry nothing raidfs uses.
  if (in.valid & FATTR_CTIME) {
    RAIDFS_TRY(attr.ctime_ns, fuse::join_time(in.ctime, in.ctimensec));
  }
  const bool changes = attr.mode || attr.uid || attr.gid || attr.size || attr.atime_ns ||
                       attr.mtime_ns || attr.ctime_ns || attr.kill_set_id;
  if (!changes) return getattr();
  RAIDFS_TRY(const meta::Inode inode, fs().setattr(ctx, nodeid(), attr));
  put_attr(inode);
  return {};
}

// Offsets: "." is 1, ".." is 2, and every other entry carries its cookie (≥ 3, stable for the
// entry's life), so a READDIR resuming at any offset lists each entry once.
Result<void> RequestDispatcher::Call::readdir(bool plus) {
  RAIDFS_TRY(const fuse_read_in in, read_struct<fuse_read_in>(req.op));
  const uint64_t dir = nodeid();
  fuse::DirentPacker packer(buffer.first(std::min<size_t>(in.size, buffer.size())), plus);
  const fuse_entry_out none{};  // READDIRPLUS without attributes: the kernel skips the entry
  if (in.offset < 2) {
    RAIDFS_TRY(const meta::Inode self, fs().getattr(dir));
    if (!S_ISDIR(self.mode)) return fail(ENOTDIR, "not a directory");
    if (in.offset == 0 && !packer.add(".", dir, DT_DIR, 1, &none))
      return fail(EINVAL, "READDIR buffer too small for one entry");
    if (!packer.add("..", self.parent, DT_DIR, 2, &none)) {
      if (packer.count() == 0) return fail(EINVAL, "READDIR buffer too small for one entry");
      reply.data = buffer.data();
      reply.data_bytes = packer.bytes();
      return {};
    }
  }
  uint64_t after = in.offset < meta::kFirstCookie ? 0 : in.offset;
  const size_t smallest = fuse::DirentPacker::entry_bytes(1, plus);
  bool full = false;
  while (!full) {
    const size_t want = std::clamp<size_t>(packer.room() / smallest + 1, 1, meta::kReaddirBatchMax);
    auto batch = fs().readdir(dir, after, want);
    if (!batch) {
      if (packer.count() == 0) return std::unexpected(batch.error());
      break;  // return what is packed; the next READDIR asks again and reports the error
    }
    for (const meta::DirEntry& e : batch->entries) {
      if (fuse::DirentPacker::entry_bytes(e.name.size(), plus) > packer.room()) {
        full = true;
        break;
      }
      fuse_entry_out entry{};
      if (plus) {
        // An entry whose inode cannot be read now goes without attributes: the kernel then looks
        // it up, and that lookup reports the error to whoever asked.
        if (auto inode = fs().getattr(e.ino))
          entry = fuse::entry_out(*inode, entry_valid(), attr_valid());
      }
      packer.add(e.name, e.ino, static_cast<uint32_t>(e.type), e.cookie, &entry);
      after = e.cookie;
    }
    if (batch->end || batch->entries.empty()) break;
  }
  if (packer.count() == 0 && full) return fail(EINVAL, "READDIR buffer too small for one entry");
  reply.data = buffer.data();
  reply.data_bytes = packer.bytes();
  return {};
}

Result<void> RequestDispatcher::Call::run() {
  const uint32_t opcode = req.header.opcode;
  if (opcode == FUSE_INIT) return init();
  if (!d.initialized()) return fail(EIO, "request before INIT");
  switch (opcode) {
    case FUSE_LOOKUP:
      return lookup();
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
      // Inode numbers are never reused and nothing is kept per lookup: nothing to forget.
      return {};
    case FUSE_GETATTR:
      return getattr();
    case FUSE_SETATTR:
      return setattr();
    case FUSE_READLINK:
      return readlink();
    case FUSE_SYMLINK:
      return symlink();
    case FUSE_MKNOD:
      return mknod();
    case FUSE_MKDIR:
      return mkdir();
    case FUSE_UNLINK:
      return unlink();
    case FUSE_RMDIR:
      return rmdir();
    case FUSE_RENAME: {
      RAIDFS_TRY(const fuse_rename_in in, read_struct<fuse_rename_in>(req.op));
      return rename(in.newdir, 0);
    }
    case FUSE_RENAME2: {
      RAIDFS_TRY(const fuse_rename2_in in, read_struct<fuse_rename2_in>(req.op));
      return rename(in.newdir, in.flags);
    }
    case FUSE_LINK:
      return link();
    case FUSE_OPEN:
      return open();
    case FUSE_READ:
      return read();
    case FUSE_WRITE:
      return write();
    case FUSE_STATFS:
      return statfs();
    case FUSE_RELEASE: {
      RAIDFS_TRY(const fuse_release_in in, read_struct<fuse_release_in>(req.op));
      const bool writable = in.fh == kWritableHandle;
      RAIDFS_CHECK(fs().release(nodeid(), writable));
      // RELEASE is asynchronous: a stat between close(2) and here got st_blocks counting the
      // whole size (Filesystem::has_writer), which the kernel keeps for attr_timeout.
      if (writable && !fs().has_writer(nodeid())) d.invalidate_attributes(nodeid());
      return {};
    }
    case FUSE_FSYNC:
      return fs().fsync(ctx, nodeid());  // fdatasync too: the same commit
    case FUSE_SETXATTR:
      return setxattr();
    case FUSE_GETXATTR:
      return getxattr();
    case FUSE_LISTXATTR:
      return listxattr();
    case FUSE_REMOVEXATTR:
      return removexattr();
    case FUSE_FLUSH:
      return {};  // close(2): data goes to the open stripe on WRITE already
    case FUSE_OPENDIR:
      return opendir();
    case FUSE_READDIR:
      return readdir(false);
    case FUSE_READDIRPLUS:
      return readdir(true);
    case FUSE_RELEASEDIR:
      return fs().release(nodeid(), false);
    case FUSE_FSYNCDIR:
      return fs().sync_metadata();
    case FUSE_ACCESS:
      return {};  // mounted with default_permissions: the kernel checks
    case FUSE_CREATE:
      return create();
    case FUSE_TMPFILE:
      return tmpfile();
    case FUSE_INTERRUPT:
      return {};  // requests run to completion; nothing to interrupt
    case FUSE_DESTROY:
      return fs().sync_all(ctx);
    case FUSE_FALLOCATE:
      return fallocate();
    case FUSE_LSEEK:
      return lseek();
    case FUSE_NOTIFY_REPLY:
      return {};  // raidfs sends no retrieve notifications
    default:
      // GETLK/SETLK (the kernel then keeps locks locally), IOCTL, POLL, BMAP, COPY_FILE_RANGE,
      // SETUPMAPPING, SYNCFS, STATX and opcodes newer than this code: ENOSYS is how
      // the kernel learns an operation is not implemented and falls back.
      return fail(ENOSYS, "not implemented");
  }
}

void RequestDispatcher::invalidate_attributes(uint64_t ino) {
  if (!notifier_) return;
  struct {
    fuse_out_header header;
    fuse_notify_inval_inode_out inval;
  } message{};
  message.header.len = sizeof(message);
  message.header.error = FUSE_NOTIFY_INVAL_INODE;
  message.inval.ino = ino;
  message.inval.off = -1;  // attributes only, no page cache
  auto sent = notifier_({reinterpret_cast<const uint8_t*>(&message), sizeof(message)});
  // ENOENT: the kernel no longer caches the inode, so nothing of it is stale.
  if (!sent && sent.error().code != ENOENT && error_log_.allow())
    RAIDFS_LOG(kWarning, "telling the kernel that inode %llu changed: %s",
               static_cast<unsigned long long>(ino), sent.error().message.c_str());
}

RequestDispatcher::RequestDispatcher(Filesystem& fs, const DispatcherOptions& options)
    : fs_(fs), options_(options) {
  options_.max_write = std::clamp(options_.max_write, kMaxWriteMin, kMaxWriteMax) / 4096 * 4096;
}

size_t RequestDispatcher::op_struct_bytes(uint32_t opcode) {
  switch (opcode) {
    case FUSE_FORGET:
      return sizeof(fuse_forget_in);
    case FUSE_GETATTR:
      return sizeof(fuse_getattr_in);
    case FUSE_SETATTR:
      return sizeof(fuse_setattr_in);
    case FUSE_MKNOD:
      return sizeof(fuse_mknod_in);
    case FUSE_MKDIR:
      return sizeof(fuse_mkdir_in);
    case FUSE_RENAME:
      return sizeof(fuse_rename_in);
    case FUSE_LINK:
      return sizeof(fuse_link_in);
    case FUSE_OPEN:
    case FUSE_OPENDIR:
      return sizeof(fuse_open_in);
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      return sizeof(fuse_read_in);
    case FUSE_WRITE:
      return sizeof(fuse_write_in);
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
      return sizeof(fuse_release_in);
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
      return sizeof(fuse_fsync_in);
    case FUSE_SETXATTR:
      return FUSE_COMPAT_SETXATTR_IN_SIZE;  // FUSE_SETXATTR_EXT not asked for
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
      return sizeof(fuse_getxattr_in);
    case FUSE_FLUSH:
      return sizeof(fuse_flush_in);
    case FUSE_ACCESS:
      return sizeof(fuse_access_in);
    case FUSE_CREATE:
    case FUSE_TMPFILE:
      return sizeof(fuse_create_in);
    case FUSE_INTERRUPT:
      return sizeof(fuse_interrupt_in);
    case FUSE_BATCH_FORGET:
      return sizeof(fuse_batch_forget_in);
    case FUSE_FALLOCATE:
      return sizeof(fuse_fallocate_in);
    case FUSE_RENAME2:
      return sizeof(fuse_rename2_in);
    case FUSE_LSEEK:
      return sizeof(fuse_lseek_in);
    default:
      return 0;  // LOOKUP, READLINK, SYMLINK, UNLINK, RMDIR, STATFS, REMOVEXATTR, DESTROY
  }
}

Result<RequestView> RequestDispatcher::split_classic(std::span<const uint8_t> bytes) {
  RequestView view;
  if (bytes.size() < sizeof(fuse_in_header)) return fail(EINVAL, "request shorter than its header");
  std::memcpy(&view.header, bytes.data(), sizeof(fuse_in_header));
  if (view.header.len != bytes.size())
    return fail(EINVAL, "request length disagrees with its header");
  std::span<const uint8_t> rest = bytes.subspan(sizeof(fuse_in_header));
  // Extensions (security context, supplementary groups) trail the request; raidfs asks for none.
  const size_t ext_bytes = size_t{view.header.total_extlen} * 8;
  if (ext_bytes > rest.size()) return fail(EINVAL, "request extensions longer than the request");
  rest = rest.first(rest.size() - ext_bytes);
  const uint32_t opcode = view.header.opcode;
  const size_t op_bytes = opcode == FUSE_INIT ? rest.size() : op_struct_bytes(opcode);
  if (op_bytes > rest.size()) {
    view.op = rest;  // short: the handler's read_struct refuses it with EINVAL
    return view;
  }
  view.op = rest.first(op_bytes);
  view.payload = rest.subspan(op_bytes);
  return view;
}

Reply RequestDispatcher::reply_to_unreadable(std::span<const uint8_t> bytes) {
  Reply reply;
  if (bytes.size() < sizeof(fuse_in_header)) {
    reply.send = false;
    return reply;
  }
  fuse_in_header header;
  std::memcpy(&header, bytes.data(), sizeof header);
  reply.unique = header.unique;
  reply.error = -EINVAL;
  reply.send = !takes_no_reply(header.opcode);
  return reply;
}

Result<RequestView> RequestDispatcher::split_uring(const fuse_uring_req_header& entry,
                                                  std::span<const uint8_t> payload) {
  static_assert(sizeof(fuse_in_header) <= sizeof entry.in_out);
  RequestView view;
  std::memcpy(&view.header, entry.in_out, sizeof(fuse_in_header));
  fuse_uring_ent_in_out info;
  std::memcpy(&info, &entry.ring_ent_in_out, sizeof info);
  if (info.payload_sz > payload.size())
    return fail(EINVAL, "ring entry payload_sz larger than the payload buffer");
  std::span<const uint8_t> rest = payload.first(info.payload_sz);
  const size_t ext_bytes = size_t{view.header.total_extlen} * 8;
  if (ext_bytes > rest.size()) return fail(EINVAL, "request extensions longer than the payload");
  view.payload = rest.first(rest.size() - ext_bytes);
  // The kernel puts the per-op struct (its first argument) in op_in and everything after it in
  // the payload; an opcode without one has an empty first argument. INIT never comes this way.
  const size_t op_bytes = std::min(op_struct_bytes(view.header.opcode), sizeof entry.op_in);
  view.op = std::span(reinterpret_cast<const uint8_t*>(entry.op_in), op_bytes);
  return view;
}

Reply RequestDispatcher::dispatch(IoContext& ctx, const RequestView& request,
                                  std::span<uint8_t> reply_buffer) {
  assert(reinterpret_cast<uintptr_t>(reply_buffer.data()) % 4096 == 0);
  Reply reply;
  reply.unique = request.header.unique;
  Call call{*this, ctx, request, reply_buffer, reply};
  const Result<void> result = call.run();
  const uint32_t opcode = request.header.opcode;
  if (takes_no_reply(opcode)) reply.send = false;
  if (!result) {
    int code = result.error().code;
    if (code <= 0 || code >= 512) code = EIO;  // the kernel takes -1 .. -511 only
    reply.error = -code;
    reply.fixed_bytes = 0;
    reply.data = nullptr;
    reply.data_bytes = 0;
    if (is_eio_class(code) || opcode == FUSE_INIT) {
      if (error_log_.allow())
        RAIDFS_LOG(kError, "%s of inode %llu: %s", opcode_name(opcode),
                   static_cast<unsigned long long>(request.header.nodeid),
                   result.error().message.c_str());
    }
  }
  RAIDFS_LOG(kDebug, "%s(%u) unique %llu inode %llu: %d", opcode_name(opcode), opcode,
             static_cast<unsigned long long>(request.header.unique),
             static_cast<unsigned long long>(request.header.nodeid), reply.error);
  return reply;
}

void RequestDispatcher::reply_not_delivered(const RequestView& request, const Reply& reply) {
  if (!reply.send || reply.error != 0) return;
  if (request.header.opcode == FUSE_OPEN && reply.fixed_bytes >= sizeof(fuse_open_out)) {
    fuse_open_out open;
    std::memcpy(&open, reply.fixed, sizeof open);
    (void)fs_.release(request.header.nodeid, open.fh == kWritableHandle);
  } else if (request.header.opcode == FUSE_OPENDIR) {
    (void)fs_.release(request.header.nodeid, false);
  } else if ((request.header.opcode == FUSE_CREATE || request.header.opcode == FUSE_TMPFILE) &&
             reply.fixed_bytes >= sizeof(fuse_entry_out) + sizeof(fuse_open_out)) {
    fuse_entry_out entry;
    std::memcpy(&entry, reply.fixed, sizeof entry);
    (void)fs_.release(entry.nodeid, true);
  }
}

}  // namespace raidfs::fs
