// PosixAcl: a POSIX access control list in the kernel's xattr form (system.posix_acl_access and
// system.posix_acl_default), and the rules a FUSE filesystem serving FUSE_POSIX_ACL applies
// itself. The kernel enforces ACLs in its permission checks, but leaves to the filesystem keeping
// the mode and the access ACL in step (setfacl, chmod) and giving new inodes their parent's
// default ACL — what the kernel's posix_acl_update_mode, posix_acl_chmod and
// posix_acl_create_masq do for ext4.
//
// Xattr form (little-endian): version:u32 = 2, then entries of tag:u16 perm:u16 id:u32, sorted by
// tag then id (the kernel validates what setfacl sends before passing it on). Tags: USER_OBJ 1,
// USER 2, GROUP_OBJ 4, GROUP 8, MASK 0x10, OTHER 0x20; perm is rwx in the low 3 bits.
//
// Values only; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace raidfs::fs {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
inline constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";

class PosixAcl {
 public:
  enum Tag : uint16_t {
    kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10, kOther = 0x20,
  };
  struct Entry {
    uint16_t tag = 0;
    uint16_t perm = 0;  // rwx
    uint32_t id = 0;    // uid or gid for kUser/kGroup; unused (the kernel sends -1) for the rest
    bool operator==(const Entry&) const = default;
  };

  // EINVAL for a value that is not a valid ACL: wrong version or size, an unknown tag or
  // permission bit, a missing or repeated USER_OBJ/GROUP_OBJ/OTHER, named entries without a mask.
  static Result<PosixAcl> decode(std::string_view xattr);
  std::string encode() const;
  const std::vector<Entry>& entries() const { return entries_; }

  // The permission bits (0777) the ACL gives the owner, the group class (the mask if there is
  // one, else the owning group) and others: what the mode shows.
  uint32_t mode_bits() const;
  // Whether the ACL says no more than the mode does (only USER_OBJ, GROUP_OBJ and OTHER): then it
  // is not stored, the mode alone says it.
  bool equivalent_to_mode() const;
  // chmod: the owner, group-class and other entries take the new mode's bits.
  void apply_mode(uint32_t mode);
  // This ACL as a directory's default, turned into a new inode's access ACL: every entry is cut
  // to what `mode` (the mode the creator asked for) allows and the mode to what the ACL allows.
  // Returns the new inode's permission bits (the rest of `mode`, setuid and the like, kept).
  uint32_t mask_create(uint32_t mode);

 private:
  std::vector<Entry> entries_;
};

}  // namespace raidfs::fs
