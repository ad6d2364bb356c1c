// AlignedBuffer: an owned, zero-filled byte buffer aligned for O_DIRECT and SIMD parity (4 KiB).
//
// Move-only. Sizes are rounded up to a multiple of 4 KiB so the whole buffer can be handed to
// O_DIRECT I/O or registered with io_uring as one fixed buffer. Allocation failure aborts (as
// operator new does): buffers are made at start-up, not on the I/O path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace raidfs {

class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 4096;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) : size_((bytes + kAlignment - 1) / kAlignment * kAlignment) {
    if (size_ == 0) return;
    data_ = static_cast<uint8_t*>(std::aligned_alloc(kAlignment, size_));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(data_, 0, size_);
  }
  ~AlignedBuffer() { std::free(data_); }

  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace raidfs
