// Goal: PosixAcl reads and writes the kernel's xattr form and applies the rules the kernel leaves
// to a FUSE filesystem as ext4's kernel code does (posix_acl_update_mode, posix_acl_chmod,
// posix_acl_create_masq). Method: ACLs built as setfacl would send them; expected values worked
// out by hand from those rules.
#include "fs/posix_acl.h"

#include <gtest/gtest.h>

namespace raidfs::fs {
namespace {

using Entry = PosixAcl::Entry;
constexpr uint32_t kNoId = UINT32_MAX;

std::string xattr(const std::vector<Entry>& entries) {
  std::string v("\x02\x00\x00\x00", 4);
  for (const Entry& e : entries) {
    for (uint32_t x : {uint32_t{e.tag} | uint32_t{e.perm} << 16, e.id})
      for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>(x >> (8 * i)));
  }
  return v;
}

// u::rwx,u:1000:rw-,g::r-x,m::rw-,o::r--
const std::vector<Entry> kNamed = {{PosixAcl::kUserObj, 7, kNoId}, {PosixAcl::kUser, 6, 1000},
                                   {PosixAcl::kGroupObj, 5, kNoId}, {PosixAcl::kMask, 6, kNoId},
                                   {PosixAcl::kOther, 4, kNoId}};

TEST(PosixAclTest, DecodesAndEncodesTheKernelsForm) {
  auto acl = PosixAcl::decode(xattr(kNamed));
  ASSERT_TRUE(acl) << acl.error().message;
  EXPECT_EQ(acl->entries(), kNamed);
  EXPECT_EQ(acl->encode(), xattr(kNamed));
  EXPECT_EQ(acl->mode_bits(), 0764u) << "the group bits show the mask";
  EXPECT_FALSE(acl->equivalent_to_mode());
  auto minimal = PosixAcl::decode(xattr({{PosixAcl::kUserObj, 6, kNoId},
                                         {PosixAcl::kGroupObj, 4, kNoId},
                                         {PosixAcl::kOther, 0, kNoId}}));
  ASSERT_TRUE(minimal);
  EXPECT_TRUE(minimal->equivalent_to_mode());
  EXPECT_EQ(minimal->mode_bits(), 0640u);
}

TEST(PosixAclTest, RefusesWhatIsNotAnAcl) {
  std::string bad_version = xattr(kNamed);
  bad_version[0] = 1;
  std::vector<Entry> no_mask = kNamed;
  no_mask.erase(no_mask.begin() + 3);
  std::vector<Entry> two_owners = kNamed;
  two_owners.push_back({PosixAcl::kUserObj, 7, kNoId});
  std::vector<Entry> bad_perm = kNamed;
  bad_perm[0].perm = 8;
  std::vector<Entry> bad_tag = kNamed;
  bad_tag[1].tag = 0x40;
  for (const std::string& v : {std::string(), std::string("\x02\x00\x00", 3), bad_version,
                               xattr(kNamed) + "x", xattr(no_mask), xattr(two_owners),
                               xattr(bad_perm), xattr(bad_tag), xattr({})}) {
    auto acl = PosixAcl::decode(v);
    ASSERT_FALSE(acl) << v.size() << " bytes";
    EXPECT_EQ(acl.error().code, EINVAL);
  }
}

TEST(PosixAclTest, ChmodSetsOwnerMaskAndOther) {
  PosixAcl acl = PosixAcl::decode(xattr(kNamed)).value();
  acl.apply_mode(0750);
  EXPECT_EQ(acl.entries()[0].perm, 7);  // owner
  EXPECT_EQ(acl.entries()[1].perm, 6) << "named entries keep theirs";
  EXPECT_EQ(acl.entries()[2].perm, 5) << "the owning group keeps its own when there is a mask";
  EXPECT_EQ(acl.entries()[3].perm, 5) << "the mask takes the group bits";
  EXPECT_EQ(acl.entries()[4].perm, 0);
  EXPECT_EQ(acl.mode_bits(), 0750u);
  PosixAcl minimal = PosixAcl::decode(xattr({{PosixAcl::kUserObj, 6, kNoId},
                                             {PosixAcl::kGroupObj, 4, kNoId},
                                             {PosixAcl::kOther, 0, kNoId}})).value();
  minimal.apply_mode(0427);
  EXPECT_EQ(minimal.mode_bits(), 0427u) << "without a mask the owning group takes them";
}

TEST(PosixAclTest, ANewInodeTakesTheDefaultCutToItsMode) {
  // A file created with 0666 under d:u::rwx,d:u:1000:rw-,d:g::r-x,d:m::rw-,d:o::r--
  PosixAcl acl = PosixAcl::decode(xattr(kNamed)).value();
  EXPECT_EQ(acl.mask_create(0666), 0664u);
  EXPECT_EQ(acl.entries()[0].perm, 6) << "owner rwx cut to rw-";
  EXPECT_EQ(acl.entries()[1].perm, 6) << "named entries are not cut";
  EXPECT_EQ(acl.entries()[2].perm, 5) << "the owning group is not cut when there is a mask";
  EXPECT_EQ(acl.entries()[3].perm, 6);
  EXPECT_EQ(acl.entries()[4].perm, 4);
  // A directory with 0700: the mask and other lose everything; setgid is kept.
  PosixAcl dir = PosixAcl::decode(xattr(kNamed)).value();
  EXPECT_EQ(dir.mask_create(02700), 02700u);
  EXPECT_EQ(dir.entries()[3].perm, 0);
  EXPECT_EQ(dir.entries()[4].perm, 0);
  // Without a mask the owning group is cut, and the result can be equivalent to the mode.
  PosixAcl minimal = PosixAcl::decode(xattr({{PosixAcl::kUserObj, 7, kNoId},
                                             {PosixAcl::kGroupObj, 7, kNoId},
                                             {PosixAcl::kOther, 5, kNoId}})).value();
  EXPECT_EQ(minimal.mask_create(0640), 0640u);
  EXPECT_TRUE(minimal.equivalent_to_mode());
  EXPECT_EQ(minimal.mode_bits(), 0640u);
}

}  // namespace
}  // namespace raidfs::fs
