// MemberIo: issues batches of reads, writes and flushes to the members of one array.
//
// One MemberIo belongs to one thread (it is not thread-safe); each thread that does member I/O
// makes its own (one io_uring per thread). A batch is submitted together — all chunks of a stripe
// in one submission — and execute() returns when every request of the batch has completed.
//
// Implementations: UringMemberIo (io_uring, O_DIRECT, fixed buffers and files) and
// FaultInjectingIo (wraps another; fails members, drops writes) for tests.
//
// Errors are per request (-errno in `result`). Only some mean the member is bad — see
// is_device_error(); the others (ENOSPC under an image file, EINVAL, ENOMEM, a spent ring's
// EEXIST ...) are the caller's or the host's problem and must not fail a member.
#pragma once

#include <cerrno>
#include <cstdint>
#include <span>

#include "base/result.h"

namespace raidfs {

enum class IoOp : uint8_t { kRead, kWrite, kFlush };

struct IoRequest {
  IoOp op = IoOp::kRead;
  uint32_t member = 0;
  uint64_t offset = 0;       // bytes; a multiple of 4 KiB for O_DIRECT members
  uint32_t length = 0;       // bytes; 0 for kFlush
  uint8_t* buffer = nullptr; // 4 KiB-aligned for O_DIRECT members
  // Set by execute(): `length` when the whole transfer (or the flush) succeeded, else -errno.
  // A short transfer is continued until done; a transfer that stops early reports -EIO.
  int32_t result = 0;

  bool ok() const { return result >= 0 && static_cast<uint32_t>(result) == length; }
};

// True for errors that mean the member device itself failed the I/O (media or transport error,
// device gone); false for errors of the request, the host or the ring.
inline bool is_device_error(int error) {
  switch (error) {
    case EIO: case ENODATA: case EILSEQ: case ENXIO: case ENODEV: case EREMOTEIO:
    case ETIMEDOUT: case EBADMSG: case ENOLINK: case EROFS: case ENOTBLK:
      return true;
    default:
      return false;
  }
}

class MemberIo {
 public:
  virtual ~MemberIo() = default;

  // Runs every request of `batch` and waits for all of them; results in each request's `result`.
  // Requests to the same member are not ordered against each other within a batch.
  virtual void execute(std::span<IoRequest> batch) = 0;

  // Registers memory that later requests' buffers point into, so the kernel pins it once rather
  // than per I/O (io_uring fixed buffers). Replaces any earlier registration; an empty list just
  // drops it. Requests whose buffer lies outside every registered range still work, unregistered.
  // The memory must stay allocated until it is replaced or dropped: the kernel keeps the pages it
  // pinned, so a buffer freed and reallocated at the same address would be read stale.
  // Errors: the kernel's, as -errno.
  virtual Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) = 0;
};

}  // namespace raidfs
