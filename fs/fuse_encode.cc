// fuse_encode: see fuse_encode.h.
#include "fs/fuse_encode.h"

#include <sys/stat.h>

#include <cmath>
#include <limits>

namespace raidfs::fs::fuse {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;

}  // namespace

Timeout split_timeout(double seconds) {
  if (!(seconds > 0)) return {};  // also NaN
  // Far beyond any useful cache time; keeps the conversion defined.
  constexpr double kSecondsMax = 1e12;
  if (seconds > kSecondsMax) seconds = kSecondsMax;
  const double whole = std::floor(seconds);
  auto nsec = static_cast<uint32_t>((seconds - whole) * 1e9);
  if (nsec >= kNsPerSecond) nsec = kNsPerSecond - 1;
  return Timeout{static_cast<uint64_t>(whole), nsec};
}

WireTime split_time(int64_t ns) {
  int64_t sec = ns / kNsPerSecond;
  int64_t rem = ns % kNsPerSecond;
  if (rem < 0) {
    rem += kNsPerSecond;
    --sec;
  }
  return WireTime{sec, static_cast<uint32_t>(rem)};
}

Result<int64_t> join_time(uint64_t wire_sec, uint32_t nsec) {
  if (nsec >= kNsPerSecond) return fail(EINVAL, "nanoseconds out of range");
  // The kernel sends a signed 64-bit time_t in an unsigned field.
  const auto sec = static_cast<int64_t>(wire_sec);
  int64_t ns = 0;
  if (__builtin_mul_overflow(sec, kNsPerSecond, &ns) ||
      __builtin_add_overflow(ns, static_cast<int64_t>(nsec), &ns))
    return fail(EINVAL, "time out of range (raidfs keeps nanoseconds in 64 bits)");
  return ns;
}

void fill_attr(const meta::Inode& inode, fuse_attr& out) {
  out = fuse_attr{};
  out.ino = inode.ino;
  out.size = inode.size;
  // st_blocks counts 512-byte units. A regular file's are the stripe blocks it holds (holes take
  // none); other inodes (and files of a store not yet upgraded) report their size.
  if (S_ISREG(inode.mode) && inode.blocks != meta::kBlocksUnknown)
    out.blocks = inode.blocks * (kBlockBytes / 512);
  else
    out.blocks = inode.size / 512 + (inode.size % 512 != 0);
  const WireTime a = split_time(inode.atime_ns), m = split_time(inode.mtime_ns),
                 c = split_time(inode.ctime_ns);
  out.atime = static_cast<uint64_t>(a.sec);
  out.mtime = static_cast<uint64_t>(m.sec);
  out.ctime = static_cast<uint64_t>(c.sec);
  out.atimensec = a.nsec;
  out.mtimensec = m.nsec;
  out.ctimensec = c.nsec;
  out.mode = inode.mode;
  out.nlink = inode.nlink;
  out.uid = inode.uid;
  out.gid = inode.gid;
  out.rdev = static_cast<uint32_t>(inode.rdev);
  out.blksize = 4096;
}

fuse_entry_out entry_out(const meta::Inode& inode, Timeout entry_valid, Timeout attr_valid) {
  fuse_entry_out e{};
  e.nodeid = inode.ino;
  e.generation = 1;
  e.entry_valid = entry_valid.sec;
  e.entry_valid_nsec = entry_valid.nsec;
  e.attr_valid = attr_valid.sec;
  e.attr_valid_nsec = attr_valid.nsec;
  fill_attr(inode, e.attr);
  return e;
}

fuse_entry_out negative_entry_out(Timeout entry_valid) {
  fuse_entry_out e{};
  e.entry_valid = entry_valid.sec;
  e.entry_valid_nsec = entry_valid.nsec;
  return e;
}

Result<std::string_view> PayloadReader::name() {
  const size_t left = remaining();
  const auto* start = bytes_.data() + pos_;
  const void* nul = left ? std::memchr(start, '\0', left) : nullptr;
  if (nul == nullptr) return fail(EINVAL, "name without a terminating NUL");
  const size_t length = static_cast<const uint8_t*>(nul) - start;
  if (length == 0) return fail(EINVAL, "empty name");
  pos_ += length + 1;
  return std::string_view(reinterpret_cast<const char*>(start), length);
}

Result<std::span<const uint8_t>> PayloadReader::take(size_t n) {
  if (n > remaining()) return fail(EINVAL, "request shorter than the length it gives");
  auto out = bytes_.subspan(pos_, n);
  pos_ += n;
  return out;
}

size_t DirentPacker::entry_bytes(size_t name_bytes, bool plus) {
  const size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
  return FUSE_DIRENT_ALIGN(head + name_bytes);
}

bool DirentPacker::add(std::string_view name, uint64_t ino, uint32_t type, uint64_t next_offset,
                       const fuse_entry_out* entry) {
  const size_t size = entry_bytes(name.size(), plus_);
  if (name.empty() || name.size() > std::numeric_limits<uint32_t>::max() || size > room())
    return false;
  uint8_t* out = buffer_.data() + used_;
  std::memset(out, 0, size);  // the padding goes to the kernel too: no stale bytes
  fuse_dirent d{};
  d.ino = ino;
  d.off = next_offset;
  d.namelen = static_cast<uint32_t>(name.size());
  d.type = type;
  if (plus_) {
    if (entry != nullptr) std::memcpy(out, entry, sizeof(fuse_entry_out));
    std::memcpy(out + offsetof(fuse_direntplus, dirent), &d, FUSE_NAME_OFFSET);
    std::memcpy(out + FUSE_NAME_OFFSET_DIRENTPLUS, name.data(), name.size());
  } else {
    std::memcpy(out, &d, FUSE_NAME_OFFSET);
    std::memcpy(out + FUSE_NAME_OFFSET, name.data(), name.size());
  }
  used_ += size;
  ++count_;
  return true;
}

}  // namespace raidfs::fs::fuse
