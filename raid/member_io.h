// MemberIo: issues batches of reads, writes and flushes to the members of one array.
//
// One MemberIo belongs to one thread (it is not thread-safe); each thread that does member I/O
// makes its own (one io_uring per thread). A batch is submitted together — all chunks of a stripe
// in one submission — and execute() returns when every request of the batch has completed.
//
// Implementations: UringMemberIo (io_uring, O_DIRECT, fixed buffers and files) and
// FaultInjectingIo (wraps another; fails members, drops writes) for tests.
#pragma once

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

class MemberIo {
 public:
  virtual ~MemberIo() = default;

  // Runs every request of `batch` and waits for all of them; results in each request's `result`.
  // Requests to the same member are not ordered against each other within a batch.
  virtual void execute(std::span<IoRequest> batch) = 0;

  // Registers memory that later requests' buffers point into, so the kernel pins it once rather
  // than per I/O (io_uring fixed buffers). Replaces any earlier registration. Requests whose buffer
  // lies outside every registered range still work, unregistered. Errors: the kernel's, as -errno.
  virtual Result<void> register_buffers(std::span<const std::span<uint8_t>> ranges) = 0;
};

}  // namespace raidfs
