// array_spec: from what a user names on the command line to an opened Array and its metadata.
//
// A SPEC is one of:
//   - a comma-separated list of member paths, in any order (each member's superblock says where
//     it goes, and where the metadata lives: in the members' region, or in a directory);
//   - a metadata directory (an array made with mkfs.raidfs -m), which holds the member list that
//     mkfs.raidfs wrote, `members`, one path per line in member order;
//   - a directory holding member images (no `members` file): the images of one array in it;
//   - UUID=<array uuid> (or uuid=..., the form mount(8) passes through: it resolves UUID= tags
//     itself, with libblkid, which knows no raidfs): the block devices (/sys/class/block) whose
//     superblocks name it.
// `members` overrides the member paths of a metadata directory (devices renamed since mkfs).
//
// The metadata of a self-contained array is its members' region (fs/region_on_array.h); of any
// other, the RocksDB directory its superblocks record.
//
// Used by mount.raidfs, raidfs-fsck and the admin tool, so they all accept the same SPECs and
// say the same things about them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/region_on_array.h"
#include "meta/fs_meta.h"
#include "raid/array.h"

namespace raidfs::fs {

inline constexpr const char* kMembersFileName = "members";

struct OpenedArray {
  std::unique_ptr<Array> array;
  std::unique_ptr<meta::FsMeta> meta;
  std::vector<std::string> warnings;  // the array's (degraded, backup superblock used ...)
};

// Member paths named by `spec` (see above). ENOENT: neither a directory nor a list of existing
// paths, a directory with neither a member list nor members, no device with that UUID; EINVAL
// an empty list, a directory holding members of several arrays.
Result<std::vector<std::string>> member_paths(const std::string& spec);

// The options that open (or, with `create`, make) the metadata database in the directory an
// array's superblock names: its directory, the array's UUID, and the stripe geometry a new
// database records.
meta::StoreOptions metadata_store_options(const Superblock& sb, bool create);

// The same for an opened array of either kind: a self-contained array's region is opened (with
// `create`, formatted first — mkfs) on the array's members, its I/O through `wrap` when given
// (tests). `metadata_dir` is the directory of an array that has one. `read_only`: a region is
// opened, and its database, without a write (a read-only open records no member state, so the
// region must not change while a member may be away; a directory's database is opened as
// always). Errors: the region's (EUCLEAN no intact journal: its metadata is damaged beyond its
// copies).
Result<meta::StoreOptions> store_options(Array& array, const std::string& metadata_dir,
                                         bool create, bool read_only = false,
                                         const WrapMemberIo& wrap = {});
// FsMeta::open with store_options().
Result<std::unique_ptr<meta::FsMeta>> open_metadata(Array& array, const std::string& metadata_dir,
                                                    bool create, bool read_only = false,
                                                    const WrapMemberIo& wrap = {});

// EINVAL (naming the metadata directory) when the metadata's stripe count or size is not the
// members' geometry: a database of another array or format.
Result<void> check_metadata_geometry(const meta::Super& super, const Superblock& sb);

// Writes the member list into a metadata directory (mkfs.raidfs).
Result<void> write_member_list(const std::string& metadata_dir,
                               const std::vector<std::string>& paths);

// The members of the array named by `spec` (from `members_override` when it is not empty),
// opened as Array::open does (`record_states` as OpenOptions'), and in `metadata_dir` the
// metadata directory to use with them: `spec` when it is one (its database must then belong to
// these members), else the one the superblocks record ("" for a self-contained array). Paths
// from a metadata directory's own list count a blank member as missing
// (OpenOptions::from_member_list).
Result<std::unique_ptr<Array>> open_members(const std::string& spec,
                                            const std::vector<std::string>& members_override,
                                            bool record_states, std::string& metadata_dir);

// Opens the array named by `spec` (members from `members_override` when it is not empty) and the
// metadata database its superblocks name. Errors name the member or directory concerned: those of
// Array::open (ENXIO more members missing than the parity count — the message names them) and
// FsMeta::open, and EINVAL when the metadata belongs to another array or another geometry.
// `read_only`: write nothing to the members while opening (see OpenOptions::record_states).
Result<OpenedArray> open_array(const std::string& spec,
                               const std::vector<std::string>& members_override = {},
                               bool read_only = false, const WrapMemberIo& wrap = {});

}  // namespace raidfs::fs
