// RequestDispatcher driven with requests built byte for byte as the kernel sends them, against a
// real Filesystem on temporary member images: INIT negotiation, the encoding of entries,
// attributes and directory listings, the data paths, and the rejection of malformed requests.
#include "fs/fuse_dispatcher.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/log.h"
#include "fs/array_spec.h"
#include "fs/fuse_encode.h"
#include "base/aligned_buffer.h"
#include "tests/support/temp_dir.h"

namespace raidfs::fs {
namespace {

constexpr uint32_t kKernelMinor = 45;  // newer than raidfs: the answer must be raidfs's 42
constexpr uint64_t kKernelOffer =
    FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT |
    FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_SPLICE_WRITE | FUSE_FLOCK_LOCKS | FUSE_DO_READDIRPLUS |
    FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO | FUSE_WRITEBACK_CACHE | FUSE_PARALLEL_DIROPS |
    FUSE_HANDLE_KILLPRIV | FUSE_HANDLE_KILLPRIV_V2 | FUSE_POSIX_ACL | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS |
    FUSE_SETXATTR_EXT | FUSE_INIT_EXT | FUSE_SECURITY_CTX | FUSE_PASSTHROUGH | FUSE_OVER_IO_URING;

// A request as /dev/fuse delivers it: header, per-op struct, payload.
class Request {
 public:
  Request(uint32_t opcode, uint64_t nodeid) {
    header_.opcode = opcode;
    header_.nodeid = nodeid;
    header_.unique = next_unique_++;
    header_.uid = 0;
    header_.gid = 0;
  }
  template <class T>
  Request& op(const T& value) {
    append(&value, sizeof value);
    return *this;
  }
  Request& name(std::string_view s) {
    append(s.data(), s.size());
    bytes_.push_back(0);
    return *this;
  }
  Request& raw(std::string_view s) {
    append(s.data(), s.size());
    return *this;
  }
  Request& caller(uint32_t uid, uint32_t gid) {
    header_.uid = uid;
    header_.gid = gid;
    return *this;
  }
  uint64_t unique() const { return header_.unique; }
  // The bytes, with the header's len right unless `len_delta` says otherwise.
  std::vector<uint8_t> bytes(int len_delta = 0) const {
    fuse_in_header h = header_;
    h.len = static_cast<uint32_t>(sizeof h + bytes_.size() + len_delta);
    std::vector<uint8_t> out(sizeof h);
    std::memcpy(out.data(), &h, sizeof h);
    out.insert(out.end(), bytes_.begin(), bytes_.end());
    return out;
  }

 private:
  void append(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
  }
  static inline uint64_t next_unique_ = 1;
  fuse_in_header header_{};
  std::vector<uint8_t> bytes_;
};

template <class T>
T body_as(const Reply& r) {
  T out{};
  EXPECT_EQ(r.error, 0);
  EXPECT_GE(r.fixed_bytes, sizeof(T));
  std::memcpy(&out, r.fixed, std::min<size_t>(sizeof(T), r.fixed_bytes));
  return out;
}

struct Dirent {
  std::string name;
  uint64_t ino = 0, off = 0;
  uint32_t type = 0;
  fuse_entry_out entry{};
};

// Parses a READDIR(PLUS) reply, checking every record's alignment and bounds.
std::vector<Dirent> parse_dirents(const Reply& r, bool plus) {
  std::vector<Dirent> out;
  size_t pos = 0;
  const size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
  while (pos < r.data_bytes) {
    EXPECT_LE(pos + head, r.data_bytes);
    if (pos + head > r.data_bytes) break;
    Dirent d;
    fuse_dirent de;
    if (plus) std::memcpy(&d.entry, r.data + pos, sizeof d.entry);
    std::memcpy(&de, r.data + pos + (plus ? offsetof(fuse_direntplus, dirent) : 0),
                FUSE_NAME_OFFSET);
    d.ino = de.ino;
    d.off = de.off;
    d.type = de.type;
    const size_t size = FUSE_DIRENT_ALIGN(head + de.namelen);
    EXPECT_LE(pos + size, r.data_bytes);
    if (pos + size > r.data_bytes) break;
    d.name.assign(reinterpret_cast<const char*>(r.data + pos + head), de.namelen);
    for (size_t i = head + de.namelen; i < size; ++i) EXPECT_EQ(r.data[pos + i], 0) << "padding";
    out.push_back(d);
    pos += size;
  }
  return out;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::kWarning);  // INIT logs a line at info level
    std::vector<std::string> paths;
    for (int i = 0; i < 4; ++i)
      paths.push_back(dir_.image("m" + std::to_string(i) + ".img", 24 << 20));
    FormatOptions fo;
    fo.parity_count = 1;
    fo.chunk_bytes = 16384;
    fo.metadata_dir = dir_.file("meta");
    auto sb = Array::format(paths, fo);
    ASSERT_TRUE(sb) << sb.error().message;
    std::filesystem::create_directories(fo.metadata_dir);
    ASSERT_TRUE(write_member_list(fo.metadata_dir, paths));
    const Geometry g = sb->geometry();
    meta::StoreOptions so;
    so.path = fo.metadata_dir;
    so.array_uuid = sb->array_uuid;
    so.create_if_missing = true;
    so.stripe_count = g.stripe_count();
    so.stripe_data_bytes = static_cast<uint32_t>(g.stripe_data_bytes());
    so.geometry = std::to_string(g.member_count()) + "x" + std::to_string(g.chunk_bytes()) + "/p" +
                  std::to_string(g.parity_count());
    ASSERT_TRUE(meta::FsMeta::open(so));
    auto opened = open_array(fo.metadata_dir);
    ASSERT_TRUE(opened) << opened.error().message;
    auto fs = Filesystem::open(std::move(opened->array), std::move(opened->meta), {});
    ASSERT_TRUE(fs) << fs.error().message;
    fs_ = std::move(*fs);
    auto ctx = fs_->make_io_context();
    ASSERT_TRUE(ctx);
    ctx_ = std::move(*ctx);
    make_dispatcher({});
  }

  void make_dispatcher(const DispatcherOptions& options) {
    dispatcher_ = std::make_unique<RequestDispatcher>(*fs_, options);
  }

  Reply send(const std::vector<uint8_t>& bytes) {
    auto view = RequestDispatcher::split_classic(bytes);
    if (!view) return RequestDispatcher::reply_to_unreadable(bytes);
    return dispatcher_->dispatch(*ctx_, *view, std::span<uint8_t>(reply_.data(), reply_.size()));
  }
  Reply send(const Request& r) { return send(r.bytes()); }

  Reply init(uint32_t major = 7, uint32_t minor = kKernelMinor, uint64_t flags = kKernelOffer) {
    fuse_init_in in{};
    in.major = major;
    in.minor = minor;
    in.max_readahead = 131072;
    in.flags = static_cast<uint32_t>(flags);
    in.flags2 = static_cast<uint32_t>(flags >> 32);
    return send(Request(FUSE_INIT, 0).op(in));
  }

  uint64_t create_file(uint64_t parent, const std::string& name, uint32_t mode = 0644) {
    fuse_create_in in{};
    in.mode = S_IFREG | mode;
    in.flags = O_RDWR;
    const Reply r = send(Request(FUSE_CREATE, parent).op(in).name(name));
    EXPECT_EQ(r.error, 0);
    EXPECT_EQ(r.fixed_bytes, sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    fuse_entry_out e;
    std::memcpy(&e, r.fixed, sizeof e);
    return e.nodeid;
  }

  testing::TempDir dir_;
  std::unique_ptr<Filesystem> fs_;
  std::unique_ptr<IoContext> ctx_;
  std::unique_ptr<RequestDispatcher> dispatcher_;
  AlignedBuffer reply_{(1u << 20) + 4096};
};

TEST_F(DispatcherTest, InitAnswersOurMinorAndOnlyFlagsTheKernelOffered) {
  const Reply r = init();
  ASSERT_EQ(r.error, 0);
  ASSERT_EQ(r.fixed_bytes, sizeof(fuse_init_out));
  const auto out = body_as<fuse_init_out>(r);
  EXPECT_EQ(out.major, 7u);
  EXPECT_EQ(out.minor, fuse::kProtocolMinor);
  EXPECT_EQ(out.max_readahead, 131072u);
  EXPECT_EQ(out.max_write, 1u << 20);
  EXPECT_EQ(out.max_pages, 256u);
  EXPECT_EQ(out.time_gran, 1u);
  EXPECT_EQ(out.max_background, 64u);
  EXPECT_EQ(out.congestion_threshold, 48u);
  const uint64_t granted = out.flags | static_cast<uint64_t>(out.flags2) << 32;
  // Not FUSE_ASYNC_DIO, although offered: it leaves stale pages after async O_DIRECT writes.
  const uint64_t expected = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS |
                            FUSE_READDIRPLUS_AUTO | FUSE_WRITEBACK_CACHE | FUSE_PARALLEL_DIROPS |
                            FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT | FUSE_EXPORT_SUPPORT |
                            FUSE_POSIX_ACL | FUSE_DONT_MASK | FUSE_HANDLE_KILLPRIV_V2;
  EXPECT_EQ(granted, expected) << std::hex << granted;
  EXPECT_TRUE(dispatcher_->initialized());
  EXPECT_EQ(dispatcher_->connection().minor, fuse::kProtocolMinor);
  EXPECT_FALSE(dispatcher_->connection().over_io_uring());
  // The out header announces exactly header + struct.
  EXPECT_EQ(r.out_header().len, sizeof(fuse_out_header) + sizeof(fuse_init_out));
  // A second INIT changes nothing.
  const Reply again = init(7, 31);
  EXPECT_EQ(again.error, -EINVAL);
  EXPECT_EQ(again.out_header().len, sizeof(fuse_out_header));
  EXPECT_EQ(dispatcher_->connection().minor, fuse::kProtocolMinor);
}

TEST_F(DispatcherTest, InitGrantsIoUringOnlyWhenAskedAndOffered) {
  make_dispatcher({.writeback_cache = false, .over_io_uring = true});
  auto out = body_as<fuse_init_out>(init(7, kKernelMinor, kKernelOffer & ~FUSE_OVER_IO_URING));
  EXPECT_EQ(out.flags2 & (FUSE_OVER_IO_URING >> 32), 0u);
  EXPECT_EQ(out.flags & FUSE_WRITEBACK_CACHE, 0u);

  make_dispatcher({.over_io_uring = true});
  out = body_as<fuse_init_out>(init());
  EXPECT_NE(out.flags2 & (FUSE_OVER_IO_URING >> 32), 0u);
  EXPECT_TRUE(dispatcher_->connection().over_io_uring());

  // Without FUSE_INIT_EXT the kernel has no flags2: nothing from it is granted.
  make_dispatcher({.over_io_uring = true});
  out = body_as<fuse_init_out>(init(7, kKernelMinor, kKernelOffer & ~uint64_t{FUSE_INIT_EXT}));
  EXPECT_EQ(out.flags2, 0u);
  EXPECT_EQ(out.flags & FUSE_INIT_EXT, 0u);
}

// FUSE_ASYNC_DIO only when the mount asks (-o async_dio): it trades buffered readers' coherence
// with async O_DIRECT writes for O_DIRECT queue depth.
TEST_F(DispatcherTest, InitGrantsAsyncDirectIoOnlyWhenAsked) {
  make_dispatcher({});
  EXPECT_EQ(body_as<fuse_init_out>(init()).flags & FUSE_ASYNC_DIO, 0u);
  make_dispatcher({.async_dio = true});
  EXPECT_NE(body_as<fuse_init_out>(init()).flags & FUSE_ASYNC_DIO, 0u);
}

TEST_F(DispatcherTest, InitWithAnOlderKernelAnswersItsMinorAndRefusesTooOld) {
  auto out = body_as<fuse_init_out>(init(7, 31));
  EXPECT_EQ(out.minor, 31u);
  make_dispatcher({});
  EXPECT_EQ(init(7, 27).error, -EPROTO);
  EXPECT_FALSE(dispatcher_->initialized());
  EXPECT_EQ(init(6, 40).error, -EPROTO);
  // A newer major: answer ours and wait for the kernel's next INIT.
  const Reply r = init(8, 0);
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(body_as<fuse_init_out>(r).major, 7u);
  EXPECT_FALSE(dispatcher_->initialized());
}

TEST_F(DispatcherTest, RequestsBeforeInitFail) {
  EXPECT_EQ(send(Request(FUSE_GETATTR, meta::kRootIno).op(fuse_getattr_in{})).error, -EIO);
}

TEST_F(DispatcherTest, LookupAndGetattrEncodeTheInode) {
  init();
  const uint64_t ino = create_file(meta::kRootIno, "file");
  fuse_write_in w{};
  w.size = 1000;
  ASSERT_EQ(send(Request(FUSE_WRITE, ino).op(w).raw(std::string(1000, 'x'))).error, 0);

  const Reply r = send(Request(FUSE_LOOKUP, meta::kRootIno).name("file"));
  const auto e = body_as<fuse_entry_out>(r);
  EXPECT_EQ(r.fixed_bytes, sizeof(fuse_entry_out));
  EXPECT_EQ(e.nodeid, ino);
  EXPECT_EQ(e.generation, 1u);
  EXPECT_EQ(e.entry_valid, 1u);
  EXPECT_EQ(e.attr_valid, 1u);
  EXPECT_EQ(e.attr.ino, ino);
  EXPECT_EQ(e.attr.mode, S_IFREG | 0644u);
  EXPECT_EQ(e.attr.size, 1000u);
  EXPECT_EQ(e.attr.blocks, 8u);  // 1000 bytes take one 4 KiB block
  EXPECT_EQ(e.attr.blksize, 4096u);
  EXPECT_EQ(e.attr.nlink, 1u);

  const auto a = body_as<fuse_attr_out>(send(Request(FUSE_GETATTR, ino).op(fuse_getattr_in{})));
  EXPECT_EQ(a.attr.ino, ino);
  EXPECT_EQ(a.attr.size, 1000u);
  EXPECT_EQ(a.attr_valid, 1u);
  const auto inode = fs_->getattr(ino);
  ASSERT_TRUE(inode);
  EXPECT_EQ(static_cast<int64_t>(a.attr.mtime) * 1'000'000'000 + a.attr.mtimensec, inode->mtime_ns);
}

TEST_F(DispatcherTest, MissingNamesAreCachedNegativeOrReportedWithoutTimeout) {
  init();
  const Reply r = send(Request(FUSE_LOOKUP, meta::kRootIno).name("nothing"));
  const auto e = body_as<fuse_entry_out>(r);
  EXPECT_EQ(e.nodeid, 0u);
  EXPECT_EQ(e.entry_valid, 1u);

  make_dispatcher({.entry_timeout = 0});
  init();
  EXPECT_EQ(send(Request(FUSE_LOOKUP, meta::kRootIno).name("nothing")).error, -ENOENT);
}

TEST_F(DispatcherTest, ReaddirListsDotsThenEveryEntryOnceAcrossResumes) {
  init();
  std::set<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    const std::string name = "entry-" + std::to_string(i) + std::string(i % 40, 'n');
    create_file(meta::kRootIno, name);
    expected.insert(name);
  }
  for (const bool plus : {false, true}) {
    std::map<std::string, Dirent> seen;
    uint64_t offset = 0;
    int calls = 0;
    for (;;) {
      fuse_read_in in{};
      in.offset = offset;
      in.size = 4096;
      const Reply r = send(Request(plus ? FUSE_READDIRPLUS : FUSE_READDIR, meta::kRootIno).op(in));
      ASSERT_EQ(r.error, 0);
      EXPECT_EQ(r.data, reply_.data());  // data at the start of the transport's buffer
      EXPECT_LE(r.data_bytes, 4096u);
      const auto entries = parse_dirents(r, plus);
      if (entries.empty()) break;
      ++calls;
      for (const Dirent& d : entries) {
        EXPECT_GT(d.off, offset) << "offsets increase";
        offset = d.off;
        EXPECT_TRUE(seen.emplace(d.name, d).second) << "listed twice: " << d.name;
      }
    }
    EXPECT_GT(calls, 1) << "a 4 KiB buffer cannot hold 300 entries";
    ASSERT_EQ(seen.size(), expected.size() + 2);
    EXPECT_EQ(seen["."].off, 1u);
    EXPECT_EQ(seen["."].ino, meta::kRootIno);
    EXPECT_EQ(seen["."].type, static_cast<uint32_t>(DT_DIR));
    EXPECT_EQ(seen[".."].off, 2u);
    EXPECT_EQ(seen[".."].ino, meta::kRootIno);  // the root is its own parent
    EXPECT_EQ(seen[".."].entry.nodeid, 0u) << "no lookup count for the dots";
    for (const std::string& name : expected) {
      ASSERT_TRUE(seen.contains(name));
      const Dirent& d = seen[name];
      EXPECT_EQ(d.type, static_cast<uint32_t>(DT_REG));
      EXPECT_GE(d.off, meta::kFirstCookie);
      if (plus) {
        EXPECT_EQ(d.entry.nodeid, d.ino);
        EXPECT_EQ(d.entry.attr.ino, d.ino);
        EXPECT_EQ(d.entry.attr.mode, S_IFREG | 0644u);
      }
    }
  }
}

TEST_F(DispatcherTest, ReaddirOfASubdirectoryNamesItsParentAndRejectsTinyBuffers) {
  init();
  fuse_mkdir_in mk{};
  mk.mode = 0755;
  const auto dir =
      body_as<fuse_entry_out>(send(Request(FUSE_MKDIR, meta::kRootIno).op(mk).name("sub")));
  EXPECT_EQ(dir.attr.mode, S_IFDIR | 0755u);
  fuse_read_in in{};
  in.size = 4096;
  const auto entries = parse_dirents(send(Request(FUSE_READDIR, dir.nodeid).op(in)), false);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].name, "..");
  EXPECT_EQ(entries[1].ino, meta::kRootIno);
  in.size = 8;  // smaller than any entry
  EXPECT_EQ(send(Request(FUSE_READDIR, dir.nodeid).op(in)).error, -EINVAL);
  in.size = 4096;
  EXPECT_EQ(send(Request(FUSE_READDIR, create_file(meta::kRootIno, "f")).op(in)).error, -ENOTDIR);
}

TEST_F(DispatcherTest, WriteThenReadReturnsTheDataInTheReplyBuffer) {
  init();
  const uint64_t ino = create_file(meta::kRootIno, "data");
  std::string data(300000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  fuse_write_in w{};
  w.offset = 5000;
  w.size = static_cast<uint32_t>(data.size());
  const auto wo = body_as<fuse_write_out>(send(Request(FUSE_WRITE, ino).op(w).raw(data)));
  EXPECT_EQ(wo.size, data.size());

  fuse_read_in in{};
  in.offset = 5000;
  in.size = 1u << 20;  // past the end: a short read
  const Reply r = send(Request(FUSE_READ, ino).op(in));
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(r.fixed_bytes, 0u);
  EXPECT_EQ(r.data, reply_.data());
  ASSERT_EQ(r.data_bytes, data.size());
  EXPECT_EQ(std::memcmp(r.data, data.data(), data.size()), 0);
  EXPECT_EQ(r.out_header().len, sizeof(fuse_out_header) + data.size());

  in.offset = 0;
  in.size = 5000;  // the hole before the data reads as zeros
  const Reply hole = send(Request(FUSE_READ, ino).op(in));
  ASSERT_EQ(hole.data_bytes, 5000u);
  EXPECT_EQ(std::count(hole.data, hole.data + 5000, 0), 5000);
}

TEST_F(DispatcherTest, SetattrTruncatesAndSetsTimes) {
  init();
  const uint64_t ino = create_file(meta::kRootIno, "f");
  fuse_setattr_in in{};
  in.valid = FATTR_SIZE | FATTR_MODE | FATTR_ATIME | FATTR_MTIME | FATTR_CTIME;
  in.size = 12345;
  in.mode = S_IFREG | 0600;
  in.atime = static_cast<uint64_t>(int64_t{-2});  // before 1970
  in.atimensec = 5;
  in.mtime = 1700000000;
  in.mtimensec = 999999999;
  const auto a = body_as<fuse_attr_out>(send(Request(FUSE_SETATTR, ino).op(in)));
  EXPECT_EQ(a.attr.size, 12345u);
  EXPECT_EQ(a.attr.mode, S_IFREG | 0600u);
  EXPECT_EQ(static_cast<int64_t>(a.attr.atime), -2);
  EXPECT_EQ(a.attr.atimensec, 5u);
  EXPECT_EQ(a.attr.mtime, 1700000000u);
  EXPECT_EQ(a.attr.mtimensec, 999999999u);
  in.valid = FATTR_MTIME;
  in.mtimensec = 1'000'000'000;  // out of range
  EXPECT_EQ(send(Request(FUSE_SETATTR, ino).op(in)).error, -EINVAL);
}

TEST_F(DispatcherTest, XattrsProbeSizeAndTheStatusXattrIsReadOnlyAndUnlisted) {
  init();
  const uint64_t ino = create_file(meta::kRootIno, "f");
  struct {
    uint32_t size, flags;
  } set{5, 0};
  ASSERT_EQ(send(Request(FUSE_SETXATTR, ino).op(set).name("user.k").raw("value")).error, 0);
  fuse_getxattr_in get{};
  EXPECT_EQ(
      body_as<fuse_getxattr_out>(send(Request(FUSE_GETXATTR, ino).op(get).name("user.k"))).size,
      5u);
  get.size = 4;
  EXPECT_EQ(send(Request(FUSE_GETXATTR, ino).op(get).name("user.k")).error, -ERANGE);
  get.size = 64;
  const Reply value = send(Request(FUSE_GETXATTR, ino).op(get).name("user.k"));
  ASSERT_EQ(value.data_bytes, 5u);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(value.data), 5), "value");
  const Reply list = send(Request(FUSE_LISTXATTR, ino).op(get));
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(list.data), list.data_bytes),
            std::string_view("user.k\0", 7));

  get.size = 0;
  const auto probe = body_as<fuse_getxattr_out>(
      send(Request(FUSE_GETXATTR, meta::kRootIno).op(get).name(Filesystem::kStatusXattr)));
  EXPECT_GT(probe.size, 0u);
  get.size = probe.size + 4096;  // the text may grow between the probe and the read
  const Reply status =
      send(Request(FUSE_GETXATTR, meta::kRootIno).op(get).name(Filesystem::kStatusXattr));
  ASSERT_EQ(status.error, 0);
  EXPECT_NE(std::string_view(reinterpret_cast<const char*>(status.data), status.data_bytes)
                .find("member"),
            std::string_view::npos);
  set.size = 1;
  EXPECT_EQ(
      send(Request(FUSE_SETXATTR, meta::kRootIno).op(set).name(Filesystem::kStatusXattr).raw("x"))
          .error,
      -EPERM);
  EXPECT_EQ(send(Request(FUSE_REMOVEXATTR, meta::kRootIno).name(Filesystem::kStatusXattr)).error,
            -EPERM);
  get.size = 4096;
  EXPECT_EQ(send(Request(FUSE_LISTXATTR, meta::kRootIno).op(get)).data_bytes, 0u);
  // With ACLs on (the default), a value that is no ACL is refused.
  set.size = 4;
  EXPECT_EQ(send(Request(FUSE_SETXATTR, ino)
                     .op(set)
                     .name("system.posix_acl_access")
                     .raw(std::string_view("\2\0\0\0", 4)))
                .error,
            -EINVAL);
  // A file's xattr of that name is an ordinary one.
  EXPECT_EQ(send(Request(FUSE_GETXATTR, ino).op(get).name(Filesystem::kStatusXattr)).error,
            -ENODATA);
}

TEST_F(DispatcherTest, SetgidDirectoriesHandOnTheirGroup) {
  init();
  fuse_mkdir_in mk{};
  mk.mode = 02775;
  const auto shared =
      body_as<fuse_entry_out>(send(Request(FUSE_MKDIR, meta::kRootIno).op(mk).name("shared")));
  fuse_setattr_in chgrp{};
  chgrp.valid = FATTR_GID;
  chgrp.gid = 100;
  ASSERT_EQ(send(Request(FUSE_SETATTR, shared.nodeid).op(chgrp)).error, 0);

  mk.mode = 0755;
  const auto sub = body_as<fuse_entry_out>(
      send(Request(FUSE_MKDIR, shared.nodeid).op(mk).name("sub").caller(1000, 1000)));
  EXPECT_EQ(sub.attr.gid, 100u);
  EXPECT_EQ(sub.attr.uid, 1000u);
  EXPECT_EQ(sub.attr.mode, S_IFDIR | 02755u);

  fuse_create_in cr{};
  cr.mode = S_IFREG | 02755;  // set-group-ID executable by a non-member: the bit is dropped
  const Reply r = send(Request(FUSE_CREATE, shared.nodeid).op(cr).name("tool").caller(1000, 1000));
  const auto file = body_as<fuse_entry_out>(r);
  EXPECT_EQ(file.attr.gid, 100u);
  EXPECT_EQ(file.attr.mode, S_IFREG | 0755u);
}

// SETXATTR's fixed part without FUSE_SETXATTR_EXT.
struct SetxattrIn {
  uint32_t size = 0, flags = 0;
};

// FUSE_HANDLE_KILLPRIV_V2: the kernel leaves clearing set-ID bits to raidfs, and says when.
TEST_F(DispatcherTest, WritesAndTruncatesWithTheKillFlagClearSetIdBits) {
  std::vector<std::string> notes;  // what the kernel is told
  dispatcher_->set_notifier([&](std::span<const uint8_t> m) -> Result<void> {
    notes.emplace_back(reinterpret_cast<const char*>(m.data()), m.size());
    return {};
  });
  init();
  auto mode_of = [&](uint64_t ino) {
    return body_as<fuse_attr_out>(send(Request(FUSE_GETATTR, ino).op(fuse_getattr_in{}))).attr.mode;
  };
  auto write = [&](uint64_t ino, uint32_t flags) {
    fuse_write_in w{};
    w.size = 10;
    w.write_flags = flags;
    return send(Request(FUSE_WRITE, ino).op(w).raw(std::string(10, 'x'))).error;
  };
  const uint64_t tool = create_file(meta::kRootIno, "tool", 06755);
  const uint64_t locked = create_file(meta::kRootIno, "locked", 02745);  // sgid, no group x
  // A caller with CAP_FSETID (no flag): the bits stay.
  ASSERT_EQ(write(tool, 0), 0);
  EXPECT_EQ(mode_of(tool), S_IFREG | 06755u);
  // Without it: set-user-ID goes, set-group-ID goes only with group-execute (a mandatory-locking
  // mark otherwise), and security.capability is removed.
  SetxattrIn cap{};
  const std::string caps(20, '\1');
  cap.size = static_cast<uint32_t>(caps.size());
  ASSERT_EQ(send(Request(FUSE_SETXATTR, tool).op(cap).name("security.capability").raw(caps)).error, 0);
  ASSERT_EQ(notes.size(), 0u) << "nothing changed: no notification";
  ASSERT_EQ(write(tool, FUSE_WRITE_KILL_SUIDGID), 0);
  EXPECT_EQ(mode_of(tool), S_IFREG | 0755u);
  // The kernel does not refresh the mode after a WRITE: it is told the attributes are stale.
  ASSERT_EQ(notes.size(), 1u);
  struct {
    fuse_out_header header;
    fuse_notify_inval_inode_out inval;
  } note{};
  ASSERT_EQ(notes[0].size(), sizeof(note));
  std::memcpy(&note, notes[0].data(), sizeof(note));
  EXPECT_EQ(note.header.len, sizeof(note));
  EXPECT_EQ(note.header.error, FUSE_NOTIFY_INVAL_INODE);
  EXPECT_EQ(note.header.unique, 0u);
  EXPECT_EQ(note.inval.ino, tool);
  EXPECT_EQ(note.inval.off, -1);
  ASSERT_EQ(write(tool, FUSE_WRITE_KILL_SUIDGID), 0);
  EXPECT_EQ(notes.size(), 1u) << "no bits left to clear: no notification";
  fuse_getxattr_in get{};
  get.size = 4096;
  EXPECT_EQ(send(Request(FUSE_GETXATTR, tool).op(get).name("security.capability")).error, -ENODATA);
  ASSERT_EQ(write(locked, FUSE_WRITE_KILL_SUIDGID), 0);
  EXPECT_EQ(mode_of(locked), S_IFREG | 02745u);
  // A truncate (or chown) with FATTR_KILL_SUIDGID.
  fuse_setattr_in chmod{};
  chmod.valid = FATTR_MODE;
  chmod.mode = 04755;
  ASSERT_EQ(send(Request(FUSE_SETATTR, tool).op(chmod)).error, 0);
  fuse_setattr_in trunc{};
  trunc.valid = FATTR_SIZE | FATTR_KILL_SUIDGID;
  trunc.size = 3;
  const auto a = body_as<fuse_attr_out>(send(Request(FUSE_SETATTR, tool).op(trunc)));
  EXPECT_EQ(a.attr.mode, S_IFREG | 0755u);
  EXPECT_EQ(a.attr.size, 3u);
  fuse_setattr_in kill_only{};
  kill_only.valid = FATTR_KILL_SUIDGID;
  ASSERT_EQ(send(Request(FUSE_SETATTR, tool).op(chmod)).error, 0);
  EXPECT_EQ(body_as<fuse_attr_out>(send(Request(FUSE_SETATTR, tool).op(kill_only))).attr.mode,
            S_IFREG | 0755u);
}

// An ACL in the kernel's xattr form: version 2, then (tag, perm, id) entries.
std::string acl_xattr(std::initializer_list<std::array<uint32_t, 3>> entries) {
  std::string v("\x02\x00\x00\x00", 4);
  for (const auto& [tag, perm, id] : entries)
    for (uint32_t x : {tag | perm << 16, id})
      for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>(x >> (8 * i)));
  return v;
}

// While a handle may write, st_blocks counts the whole size (Filesystem::has_writer); the last
// writable RELEASE, which comes after close(2) has returned, tells the kernel to drop what it
// cached meanwhile, or a stat would show the sparse file full for attr_timeout.
TEST_F(DispatcherTest, TheLastWritableReleaseTellsTheKernelItsAttributesAreStale) {
  std::vector<fuse_notify_inval_inode_out> notes;
  dispatcher_->set_notifier([&](std::span<const uint8_t> m) -> Result<void> {
    struct {
      fuse_out_header header;
      fuse_notify_inval_inode_out inval;
    } note{};
    EXPECT_EQ(m.size(), sizeof(note));
    std::memcpy(&note, m.data(), std::min(m.size(), sizeof(note)));
    EXPECT_EQ(note.header.error, FUSE_NOTIFY_INVAL_INODE);
    notes.push_back(note.inval);
    return {};
  });
  init();
  const uint64_t ino = create_file(meta::kRootIno, "sparse");  // a writable handle
  fuse_write_in w{};
  w.offset = 1u << 20;
  w.size = 4096;
  ASSERT_EQ(send(Request(FUSE_WRITE, ino).op(w).raw(std::string(4096, 'x'))).error, 0);
  auto blocks = [&] {
    return body_as<fuse_attr_out>(send(Request(FUSE_GETATTR, ino).op(fuse_getattr_in{}))).attr.blocks;
  };
  const uint64_t all = ((1u << 20) + 4096) / 512;
  EXPECT_EQ(blocks(), all) << "a writer is open: every block of the size";
  fuse_open_in rw{};
  rw.flags = O_WRONLY;
  ASSERT_EQ(body_as<fuse_open_out>(send(Request(FUSE_OPEN, ino).op(rw))).fh, 1u);
  const auto read_only = body_as<fuse_open_out>(send(Request(FUSE_OPEN, ino).op(fuse_open_in{})));
  fuse_release_in writable{};
  writable.fh = 1;
  fuse_release_in reader{};
  reader.fh = read_only.fh;
  ASSERT_EQ(send(Request(FUSE_RELEASE, ino).op(writable)).error, 0);
  EXPECT_TRUE(notes.empty()) << "another writer is still open";
  EXPECT_EQ(blocks(), all);
  ASSERT_EQ(send(Request(FUSE_RELEASE, ino).op(writable)).error, 0);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].ino, ino);
  EXPECT_EQ(notes[0].off, -1) << "attributes only";
  EXPECT_EQ(blocks(), 4096u / 512) << "no writer: the blocks that hold data";
  ASSERT_EQ(send(Request(FUSE_RELEASE, ino).op(reader)).error, 0);
  EXPECT_EQ(notes.size(), 1u) << "a read-only release changes nothing cached";
}

TEST_F(DispatcherTest, AclsKeepTheModeInStepAndAreInheritedWithoutTheUmask) {
  init();
  constexpr uint32_t kNone = UINT32_MAX;
  auto mode_of = [&](uint64_t ino) {
    return body_as<fuse_attr_out>(send(Request(FUSE_GETATTR, ino).op(fuse_getattr_in{}))).attr.mode;
  };
  auto set_acl = [&](uint64_t ino, const char* name, const std::string& value) {
    SetxattrIn in{};
    in.size = static_cast<uint32_t>(value.size());
    return send(Request(FUSE_SETXATTR, ino).op(in).name(name).raw(value)).error;
  };
  auto get = [&](uint64_t ino, const char* name) {
    fuse_getxattr_in in{};
    in.size = 4096;
    const Reply r = send(Request(FUSE_GETXATTR, ino).op(in).name(name));
    return r.error != 0 ? std::to_string(r.error)
                        : std::string(reinterpret_cast<const char*>(r.data), r.data_bytes);
  };
  // u::rw-,u:1000:rwx,g::r--,m::rwx,o::---: the group bits show the mask.
  const std::string named = acl_xattr({{0x01, 6, kNone}, {0x02, 7, 1000}, {0x04, 4, kNone},
                                       {0x10, 7, kNone}, {0x20, 0, kNone}});
  const uint64_t f = create_file(meta::kRootIno, "f", 0600);
  ASSERT_EQ(set_acl(f, "system.posix_acl_access", named), 0);
  EXPECT_EQ(mode_of(f), S_IFREG | 0670u);
  EXPECT_EQ(get(f, "system.posix_acl_access"), named);
  // chmod: the mask follows the group bits, the named entry keeps its own.
  fuse_setattr_in chmod{};
  chmod.valid = FATTR_MODE;
  chmod.mode = 0640;
  ASSERT_EQ(send(Request(FUSE_SETATTR, f).op(chmod)).error, 0);
  EXPECT_EQ(get(f, "system.posix_acl_access"),
            acl_xattr({{0x01, 6, kNone}, {0x02, 7, 1000}, {0x04, 4, kNone}, {0x10, 4, kNone},
                       {0x20, 0, kNone}}));
  // An ACL the mode says all of is not stored: it sets the mode.
  ASSERT_EQ(set_acl(f, "system.posix_acl_access",
                    acl_xattr({{0x01, 7, kNone}, {0x04, 5, kNone}, {0x20, 1, kNone}})), 0);
  EXPECT_EQ(mode_of(f), S_IFREG | 0751u);
  EXPECT_EQ(get(f, "system.posix_acl_access"), std::to_string(-ENODATA));
  EXPECT_EQ(set_acl(f, "system.posix_acl_default", named), -EACCES) << "defaults: directories only";

  // Without a default ACL the umask applies (the kernel leaves it to raidfs: DONT_MASK).
  fuse_mkdir_in mk{};
  mk.mode = 0777;
  mk.umask = 022;
  const auto d = body_as<fuse_entry_out>(send(Request(FUSE_MKDIR, meta::kRootIno).op(mk).name("d")));
  EXPECT_EQ(d.attr.mode, S_IFDIR | 0755u);
  ASSERT_EQ(set_acl(d.nodeid, "system.posix_acl_default", named), 0);
  EXPECT_EQ(mode_of(d.nodeid), S_IFDIR | 0755u) << "a default ACL leaves the mode alone";
  // With one, the umask does not: the new file's mode and ACL are the default cut to its mode.
  fuse_create_in cr{};
  cr.mode = S_IFREG | 0666;
  cr.umask = 077;
  cr.flags = O_RDWR;
  const auto child = body_as<fuse_entry_out>(send(Request(FUSE_CREATE, d.nodeid).op(cr).name("c")));
  EXPECT_EQ(child.attr.mode, S_IFREG | 0660u);
  EXPECT_EQ(get(child.nodeid, "system.posix_acl_access"),
            acl_xattr({{0x01, 6, kNone}, {0x02, 7, 1000}, {0x04, 4, kNone}, {0x10, 6, kNone},
                       {0x20, 0, kNone}}));
  EXPECT_EQ(get(child.nodeid, "system.posix_acl_default"), std::to_string(-ENODATA));
  mk.umask = 077;
  const auto sub = body_as<fuse_entry_out>(send(Request(FUSE_MKDIR, d.nodeid).op(mk).name("sub")));
  EXPECT_EQ(sub.attr.mode, S_IFDIR | 0670u);
  EXPECT_EQ(get(sub.nodeid, "system.posix_acl_default"), named) << "a directory inherits the default";
}

TEST_F(DispatcherTest, NoaclRefusesAclsAndLeavesTheUmaskToTheKernel) {
  DispatcherOptions options;
  options.posix_acl = false;
  make_dispatcher(options);
  const auto out = body_as<fuse_init_out>(init());
  EXPECT_EQ(out.flags & (FUSE_POSIX_ACL | FUSE_DONT_MASK), 0u);
  const uint64_t f = create_file(meta::kRootIno, "f");
  SetxattrIn in{};
  const std::string acl = acl_xattr({{0x01, 7, UINT32_MAX}, {0x04, 5, UINT32_MAX}, {0x20, 1, UINT32_MAX}});
  in.size = static_cast<uint32_t>(acl.size());
  EXPECT_EQ(send(Request(FUSE_SETXATTR, f).op(in).name("system.posix_acl_access").raw(acl)).error,
            -EOPNOTSUPP);
  fuse_mkdir_in mk{};
  mk.mode = 0777;
  mk.umask = 022;  // the kernel applied it already without DONT_MASK
  EXPECT_EQ(body_as<fuse_entry_out>(send(Request(FUSE_MKDIR, meta::kRootIno).op(mk).name("d"))).attr.mode,
            S_IFDIR | 0777u);
}

TEST_F(DispatcherTest, NamespaceOperationsReplyAsTheKernelExpects) {
  init();
  const uint64_t a = create_file(meta::kRootIno, "a");
  fuse_link_in link{};
  link.oldnodeid = a;
  EXPECT_EQ(body_as<fuse_entry_out>(send(Request(FUSE_LINK, meta::kRootIno).op(link).name("b")))
                .attr.nlink,
            2u);
  const auto sym =
      body_as<fuse_entry_out>(send(Request(FUSE_SYMLINK, meta::kRootIno).name("s").name("a")));
  const Reply target = send(Request(FUSE_READLINK, sym.nodeid));
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(target.data), target.data_bytes), "a");
  fuse_rename2_in rn{};
  rn.newdir = meta::kRootIno;
  rn.flags = RENAME_NOREPLACE;
  EXPECT_EQ(send(Request(FUSE_RENAME2, meta::kRootIno).op(rn).name("a").name("b")).error, -EEXIST);
  rn.flags = RENAME_WHITEOUT;
  EXPECT_EQ(send(Request(FUSE_RENAME2, meta::kRootIno).op(rn).name("a").name("c")).error, -EINVAL);
  fuse_rename_in plain{};
  plain.newdir = meta::kRootIno;
  EXPECT_EQ(send(Request(FUSE_RENAME, meta::kRootIno).op(plain).name("a").name("c")).error, 0);
  EXPECT_EQ(send(Request(FUSE_UNLINK, meta::kRootIno).name("c")).error, 0);
  EXPECT_EQ(send(Request(FUSE_UNLINK, meta::kRootIno).name("c")).error, -ENOENT);
  const auto st = body_as<fuse_statfs_out>(send(Request(FUSE_STATFS, meta::kRootIno)));
  EXPECT_EQ(st.st.bsize, 4096u);
  EXPECT_GT(st.st.blocks, 0u);
  EXPECT_EQ(st.st.namelen, 255u);
  // OPEN then RELEASE; FLUSH, ACCESS, OPENDIR, RELEASEDIR are answered without a body.
  fuse_open_in op{};
  const auto opened = body_as<fuse_open_out>(send(Request(FUSE_OPEN, a).op(op)));
  EXPECT_EQ(opened.fh, 0u);
  EXPECT_EQ(send(Request(FUSE_FLUSH, a).op(fuse_flush_in{})).body_bytes(), 0u);
  EXPECT_EQ(send(Request(FUSE_RELEASE, a).op(fuse_release_in{})).error, 0);
  EXPECT_EQ(send(Request(FUSE_ACCESS, a).op(fuse_access_in{})).error, 0);
  EXPECT_EQ(send(Request(FUSE_FSYNCDIR, meta::kRootIno).op(fuse_fsync_in{})).error, 0);
}

TEST_F(DispatcherTest, MalformedRequestsAreRefusedWithoutACrash) {
  init();
  const uint64_t ino = create_file(meta::kRootIno, "f");
  // Shorter than a header: nothing to answer.
  const std::vector<uint8_t> tiny(10, 0xff);
  EXPECT_FALSE(send(tiny).send);
  // The header's length disagrees with what was read.
  Request lookup(FUSE_LOOKUP, meta::kRootIno);
  lookup.name("f");
  for (int delta : {-1, 1, 1000}) {
    const Reply r = send(lookup.bytes(delta));
    EXPECT_TRUE(r.send);
    EXPECT_EQ(r.unique, lookup.unique());
    EXPECT_EQ(r.error, -EINVAL);
  }
  EXPECT_EQ(send(Request(FUSE_LOOKUP, meta::kRootIno).raw("f")).error, -EINVAL) << "no NUL";
  EXPECT_EQ(send(Request(FUSE_LOOKUP, meta::kRootIno).name("")).error, -EINVAL) << "empty";
  EXPECT_EQ(send(Request(FUSE_LOOKUP, meta::kRootIno)).error, -EINVAL) << "no name at all";
  EXPECT_EQ(send(Request(FUSE_READ, ino).raw("short")).error, -EINVAL);
  EXPECT_EQ(send(Request(FUSE_SETATTR, ino).raw(std::string(87, '\0'))).error, -EINVAL);
  fuse_write_in w{};
  w.size = 100;
  EXPECT_EQ(send(Request(FUSE_WRITE, ino).op(w).raw(std::string(99, 'x'))).error, -EINVAL);
  EXPECT_EQ(send(Request(FUSE_WRITE, ino).op(w).raw(std::string(101, 'x'))).error, -EINVAL);
  struct {
    uint32_t size, flags;
  } set{10, 0};
  EXPECT_EQ(send(Request(FUSE_SETXATTR, ino).op(set).name("user.x").raw("short")).error, -EINVAL);
  EXPECT_EQ(send(Request(FUSE_SETXATTR, ino).op(set).raw("user.x")).error, -EINVAL);
  fuse_rename_in rn{};
  EXPECT_EQ(send(Request(FUSE_RENAME, meta::kRootIno).op(rn).name("f")).error, -EINVAL)
      << "one name";
  EXPECT_EQ(send(Request(FUSE_SYMLINK, meta::kRootIno).name("s")).error, -EINVAL) << "no target";
  fuse_lseek_in ls{};
  ls.whence = SEEK_SET;
  EXPECT_EQ(send(Request(FUSE_LSEEK, ino).op(ls)).error, -EINVAL);
  // Extensions longer than the request.
  fuse_in_header h{};
  h.len = sizeof h;
  h.opcode = FUSE_GETATTR;
  h.unique = 77;
  h.total_extlen = 4;
  std::vector<uint8_t> bytes(sizeof h);
  std::memcpy(bytes.data(), &h, sizeof h);
  EXPECT_EQ(send(bytes).error, -EINVAL);
  // Operations raidfs does not implement, and opcodes it does not know, are ENOSYS.
  EXPECT_EQ(send(Request(FUSE_GETLK, ino).op(fuse_lk_in{})).error, -ENOSYS);
  EXPECT_EQ(send(Request(FUSE_IOCTL, ino).op(fuse_ioctl_in{})).error, -ENOSYS);
  EXPECT_EQ(send(Request(fuse::kOpStatx, ino).raw(std::string(24, '\0'))).error, -ENOSYS);
  EXPECT_EQ(send(Request(9999, ino)).error, -ENOSYS);
  // Requests that take no reply get none, malformed or not.
  EXPECT_FALSE(send(Request(FUSE_FORGET, ino).op(fuse_forget_in{1})).send);
  EXPECT_FALSE(send(Request(FUSE_BATCH_FORGET, 0).raw("x")).send);
  EXPECT_FALSE(send(Request(FUSE_INTERRUPT, 0).op(fuse_interrupt_in{1})).send);
  std::vector<uint8_t> short_forget = Request(FUSE_FORGET, ino).op(fuse_forget_in{1}).bytes(3);
  EXPECT_FALSE(send(short_forget).send);
  // And after all that, the filesystem still answers.
  EXPECT_EQ(body_as<fuse_entry_out>(send(Request(FUSE_LOOKUP, meta::kRootIno).name("f"))).nodeid,
            ino);
}

// A request as a FUSE-over-io_uring ring entry holds it: the in-header in in_out, the per-op
// struct in op_in, the rest at payload offset 0 (payload_sz bytes). The reply buffer is the
// payload buffer itself, as the io_uring transport passes it.
struct RingEntry {
  fuse_uring_req_header header{};
  AlignedBuffer payload{64 << 10};

  template <class Op>
  RingEntry(uint32_t opcode, uint64_t nodeid, const Op* op, std::string_view rest) {
    fuse_in_header in{};
    in.opcode = opcode;
    in.nodeid = nodeid;
    in.unique = 1000 + opcode;
    std::memcpy(header.in_out, &in, sizeof in);
    if (op != nullptr) std::memcpy(header.op_in, op, sizeof *op);
    std::memcpy(payload.data(), rest.data(), rest.size());
    header.ring_ent_in_out.payload_sz = static_cast<uint32_t>(rest.size());
    header.ring_ent_in_out.commit_id = in.unique;
  }
  std::span<uint8_t> buffer() { return {payload.data(), payload.size()}; }
};

TEST_F(DispatcherTest, RingEntriesSplitAndAnswerInTheirOwnPayloadBuffer) {
  init();
  const uint64_t ino = create_file(meta::kRootIno, "ring");
  // WRITE: data at payload offset 0 (page-aligned), the struct in op_in.
  std::string data(8192, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  fuse_write_in w{};
  w.size = static_cast<uint32_t>(data.size());
  RingEntry write(FUSE_WRITE, ino, &w, data);
  auto view = RequestDispatcher::split_uring(write.header, write.buffer());
  ASSERT_TRUE(view) << view.error().message;
  EXPECT_EQ(view->header.unique, 1000u + FUSE_WRITE);
  EXPECT_EQ(view->op.size(), sizeof(fuse_write_in));
  EXPECT_EQ(view->payload.data(), write.payload.data());
  EXPECT_EQ(view->payload.size(), data.size());
  Reply r = dispatcher_->dispatch(*ctx_, *view, write.buffer());
  EXPECT_EQ(body_as<fuse_write_out>(r).size, data.size());

  // READ: the data is in the payload buffer at offset 0, where the kernel takes it from.
  fuse_read_in rd{};
  rd.size = 8192;
  RingEntry read(FUSE_READ, ino, &rd, "");
  view = RequestDispatcher::split_uring(read.header, read.buffer());
  ASSERT_TRUE(view);
  EXPECT_TRUE(view->payload.empty());
  r = dispatcher_->dispatch(*ctx_, *view, read.buffer());
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(r.data, read.payload.data());
  ASSERT_EQ(r.data_bytes, data.size());
  EXPECT_EQ(std::memcmp(r.data, data.data(), data.size()), 0);

  // LOOKUP has no per-op struct: its name is the payload. GETXATTR's name is in the payload
  // and its value is written over it (the handler has read the name first).
  RingEntry lookup(FUSE_LOOKUP, meta::kRootIno, static_cast<const int*>(nullptr),
                   std::string_view("ring", 5));
  view = RequestDispatcher::split_uring(lookup.header, lookup.buffer());
  ASSERT_TRUE(view);
  EXPECT_TRUE(view->op.empty());
  EXPECT_EQ(body_as<fuse_entry_out>(dispatcher_->dispatch(*ctx_, *view, lookup.buffer())).nodeid,
            ino);
  dispatcher_->set_transport_status([] { return std::string("transport: test\n"); });
  fuse_getxattr_in gx{};
  gx.size = 4096;
  const std::string name = std::string(Filesystem::kStatusXattr) + '\0';
  RingEntry status(FUSE_GETXATTR, meta::kRootIno, &gx, name);
  view = RequestDispatcher::split_uring(status.header, status.buffer());
  ASSERT_TRUE(view);
  r = dispatcher_->dispatch(*ctx_, *view, status.buffer());
  ASSERT_EQ(r.error, 0);
  const std::string text(reinterpret_cast<const char*>(r.data), r.data_bytes);
  EXPECT_NE(text.find("state: healthy"), std::string::npos) << text;
  EXPECT_TRUE(text.ends_with("transport: test\n")) << text;

  // Hostile entries: payload_sz beyond the buffer, extensions beyond the payload.
  RingEntry big(FUSE_WRITE, ino, &w, data);
  big.header.ring_ent_in_out.payload_sz = static_cast<uint32_t>(big.payload.size() + 1);
  EXPECT_FALSE(RequestDispatcher::split_uring(big.header, big.buffer()));
  RingEntry ext(FUSE_LOOKUP, meta::kRootIno, static_cast<const int*>(nullptr), "x");
  fuse_in_header in;
  std::memcpy(&in, ext.header.in_out, sizeof in);
  in.total_extlen = 1;  // 8 bytes of extensions in a 1-byte payload
  std::memcpy(ext.header.in_out, &in, sizeof in);
  EXPECT_FALSE(RequestDispatcher::split_uring(ext.header, ext.buffer()));
  const Reply refused = RequestDispatcher::reply_to_unreadable(
      std::span(reinterpret_cast<const uint8_t*>(ext.header.in_out), sizeof(fuse_in_header)));
  EXPECT_EQ(refused.error, -EINVAL);
  EXPECT_EQ(refused.unique, in.unique);
}

TEST_F(DispatcherTest, AnUndeliveredOpenOrCreateIsReleased) {
  init();
  // CREATE then unlink while open: the inode lives as an orphan until its last release.
  fuse_create_in cr{};
  cr.mode = S_IFREG | 0644;
  const auto view_bytes = Request(FUSE_CREATE, meta::kRootIno).op(cr).name("gone").bytes();
  auto view = RequestDispatcher::split_classic(view_bytes);
  ASSERT_TRUE(view);
  const Reply r =
      dispatcher_->dispatch(*ctx_, *view, std::span<uint8_t>(reply_.data(), reply_.size()));
  const auto e = body_as<fuse_entry_out>(r);
  ASSERT_EQ(send(Request(FUSE_UNLINK, meta::kRootIno).name("gone")).error, 0);
  EXPECT_TRUE(fs_->getattr(e.nodeid)) << "open: kept";
  dispatcher_->reply_not_delivered(*view, r);  // the kernel never saw the CREATE succeed
  EXPECT_FALSE(fs_->getattr(e.nodeid)) << "released with its last handle";
}

}  // namespace
}  // namespace raidfs::fs
