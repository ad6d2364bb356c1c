// PosixAcl: see posix_acl.h.
#include "fs/posix_acl.h"

#include <cstring>

namespace raidfs::fs {
namespace {

constexpr uint32_t kXattrVersion = 2;
constexpr size_t kHeaderBytes = 4, kEntryBytes = 8;

uint32_t load_le32(const char* p) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}
uint16_t load_le16(const char* p) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  return static_cast<uint16_t>(b[0] | b[1] << 8);
}
void put_le32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_le16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v));
  out.push_back(static_cast<char>(v >> 8));
}

}  // namespace

Result<PosixAcl> PosixAcl::decode(std::string_view xattr) {
  if (xattr.size() < kHeaderBytes || (xattr.size() - kHeaderBytes) % kEntryBytes != 0)
    return fail(EINVAL, "POSIX ACL of a wrong size");
  if (load_le32(xattr.data()) != kXattrVersion) return fail(EINVAL, "POSIX ACL of an unknown version");
  PosixAcl acl;
  unsigned user_obj = 0, group_obj = 0, other = 0, mask = 0, named = 0;
  for (size_t at = kHeaderBytes; at < xattr.size(); at += kEntryBytes) {
    Entry e{load_le16(xattr.data() + at), load_le16(xattr.data() + at + 2),
            load_le32(xattr.data() + at + 4)};
    if (e.perm & ~7u) return fail(EINVAL, "POSIX ACL entry with unknown permission bits");
    switch (e.tag) {
      case kUserObj: ++user_obj; break;
      case kGroupObj: ++group_obj; break;
      case kOther: ++other; break;
      case kMask: ++mask; break;
      case kUser: case kGroup: ++named; break;
      default: return fail(EINVAL, "POSIX ACL entry with an unknown tag");
    }
    acl.entries_.push_back(e);
  }
  if (user_obj != 1 || group_obj != 1 || other != 1 || mask > 1 || (named > 0 && mask == 0))
    return fail(EINVAL, "POSIX ACL without exactly one owner, group and other entry (and a "
                        "mask when it names users or groups)");
  return acl;
}

std::string PosixAcl::encode() const {
  std::string out;
  out.reserve(kHeaderBytes + kEntryBytes * entries_.size());
  put_le32(out, kXattrVersion);
  for (const Entry& e : entries_) {
    put_le16(out, e.tag);
    put_le16(out, e.perm);
    put_le32(out, e.id);
  }
  return out;
}

uint32_t PosixAcl::mode_bits() const {
  uint32_t owner = 0, group = 0, other = 0, mask = 0;
  bool has_mask = false;
  for (const Entry& e : entries_) {
    if (e.tag == kUserObj) owner = e.perm;
    if (e.tag == kGroupObj) group = e.perm;
    if (e.tag == kOther) other = e.perm;
    if (e.tag == kMask) mask = e.perm, has_mask = true;
  }
  return owner << 6 | (has_mask ? mask : group) << 3 | other;
}

bool PosixAcl::equivalent_to_mode() const {
  for (const Entry& e : entries_)
    if (e.tag != kUserObj && e.tag != kGroupObj && e.tag != kOther) return false;
  return true;
}

void PosixAcl::apply_mode(uint32_t mode) {
  Entry* group_class = nullptr;
  for (Entry& e : entries_) {
    if (e.tag == kUserObj) e.perm = static_cast<uint16_t>(mode >> 6 & 7);
    if (e.tag == kOther) e.perm = static_cast<uint16_t>(mode & 7);
    if (e.tag == kMask || (e.tag == kGroupObj && group_class == nullptr)) group_class = &e;
  }
  if (group_class != nullptr) group_class->perm = static_cast<uint16_t>(mode >> 3 & 7);
}

uint32_t PosixAcl::mask_create(uint32_t mode) {
  Entry* group_class = nullptr;
  for (Entry& e : entries_) {
    if (e.tag == kUserObj) {
      e.perm &= static_cast<uint16_t>(mode >> 6 & 7);
      mode &= ~(uint32_t{7} << 6) | uint32_t{e.perm} << 6;
    } else if (e.tag == kOther) {
      e.perm &= static_cast<uint16_t>(mode & 7);
      mode &= ~uint32_t{7} | e.perm;
    } else if (e.tag == kMask || (e.tag == kGroupObj && group_class == nullptr)) {
      group_class = &e;  // the mask wins over the owning group wherever it comes
    }
  }
  if (group_class != nullptr) {
    group_class->perm &= static_cast<uint16_t>(mode >> 3 & 7);
    mode &= ~(uint32_t{7} << 3) | uint32_t{group_class->perm} << 3;
  }
  return mode;
}

}  // namespace raidfs::fs
