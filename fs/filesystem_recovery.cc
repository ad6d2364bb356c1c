// Filesystem: mount-time recovery — the stripes a crash left open are sealed (their parity moves
// from the metadata to the members). See filesystem.h.
#include "base/log.h"
#include "fs/filesystem.h"
#include "fs/stripe_writer.h"

namespace raidfs::fs {

// A stripe that cannot be sealed (a row with more chunks lost than parity covers) stays open —
// its parity in the metadata, readable wherever its rows still are — and the mount goes on: only
// the file ranges on its lost rows answer EIO, and fsck names them.
Result<void> Filesystem::seal_leftover_open_stripes(IoContext& ctx) {
  const std::vector<uint64_t> open = meta_->open_stripes();
  size_t sealed_count = 0;
  for (uint64_t id : open) {
    auto sealed = [&]() -> Result<void> {
      RAIDFS_TRY(meta::Stripe stripe, meta_->get_stripe(id));
      return seal_open_stripe(ctx, stripe);
    }();
    if (sealed) {
      ++sealed_count;
      continue;
    }
    const std::string why = "stripe " + std::to_string(id) +
                            " left open by the last mount cannot be sealed (" +
                            sealed.error().message +
                            "); it stays open, reads of its damaged rows fail: run raidfs-fsck";
    RAIDFS_LOG(kError, "%s", why.c_str());
    std::lock_guard lock(warnings_mu_);
    warnings_.push_back(why);
  }
  if (sealed_count > 0) {
    RAIDFS_CHECK(sync_metadata());
    RAIDFS_LOG(kInfo, "sealed %zu stripe(s) left open by the last mount", sealed_count);
  }
  return {};
}

// A stripe committed open holds data blocks on the members and its parity in the metadata.
// Sealing reads the data back (verified; rebuilt through the metadata parity if a member is
// gone), writes the full parity to the members, flushes, and commits the record sealed.
Result<void> Filesystem::seal_open_stripe(IoContext& ctx, const meta::Stripe& stripe) {
  const Geometry& g = array_->geometry();
  AlignedBuffer chunks(size_t{g.member_count()} * g.chunk_bytes());
  if (stripe.filled_bytes > 0)
    RAIDFS_CHECK(read_stripe_blocks(ctx, stripe, 0, stripe.filled_bytes, chunks.data()));
  RAIDFS_CHECK(StripeWriter::write_parity_and_flush(*array_, ctx.channel(), stripe.id, chunks.data()));
  const meta::Stripe sealed = StripeWriter::sealed_record(stripe.id, stripe.generation,
                                                          stripe.filled_bytes, stripe.block_crcs);
  return meta_->commit_files({}, std::span(&sealed, 1));
}

}  // namespace raidfs::fs
