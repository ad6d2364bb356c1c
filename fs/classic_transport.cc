// ClassicTransport: see classic_transport.h.
#include "fs/classic_transport.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "base/aligned_buffer.h"
#include "base/log.h"
#include "base/thread_name.h"

namespace raidfs::fs {
namespace {

// Requests are read this far into a page, so that a WRITE's data — after the 40-byte in-header
// and the 40-byte fuse_write_in — starts on a page boundary: aligned, it can go to the members
// without a copy (the StripeWriter's full-stripe path), as from an io_uring payload buffer.
constexpr size_t kWriteDataSkew = 4096 - sizeof(fuse_in_header) - sizeof(fuse_write_in);

}  // namespace

struct ClassicTransport::Worker {
  unsigned index = 0;
  std::unique_ptr<IoContext> ctx;
  AlignedBuffer request;
  AlignedBuffer reply;
  Error setup_error;
  bool started = false;
};

ClassicTransport::ClassicTransport(Filesystem& fs, RequestDispatcher& dispatcher, int fuse_fd,
                                   unsigned threads)
    : fs_(fs),
      dispatcher_(dispatcher),
      fd_(fuse_fd),
      threads_(std::clamp(threads, 1u, kThreadsMax)) {}

ClassicTransport::~ClassicTransport() = default;

unsigned ClassicTransport::threads() const {
  std::lock_guard lock(mu_);
  return threads_;
}

void ClassicTransport::grow(unsigned threads) {
  std::lock_guard lock(mu_);
  threads = std::min(threads, kThreadsMax);
  if (finished_ || threads <= threads_) return;
  threads_ = threads;
  if (!running_) return;  // run() starts them
  while (workers_.size() < threads_) spawn_locked();
}

void ClassicTransport::spawn_locked() {
  Worker& worker = workers_.emplace_back();
  worker.index = static_cast<unsigned>(workers_.size() - 1);
  unjoined_.emplace_back([this, &worker] {
    name_this_thread("raidfs-fuse" + std::to_string(worker.index));
    // Made here, not by run()'s thread: a member ring is used only by the thread that made it.
    auto ctx = fs_.make_io_context();
    if (!ctx) {
      worker.setup_error = ctx.error();
      RAIDFS_LOG(kWarning, "FUSE worker %u cannot start: %s", worker.index,
                 ctx.error().message.c_str());
      return;
    }
    worker.ctx = std::move(*ctx);
    worker.request = AlignedBuffer(kWriteDataSkew + request_bytes_);
    worker.reply = AlignedBuffer(reply_bytes_);
    // Fixed buffers: member reads into the reply buffer (and writes from the request buffer)
    // skip the per-I/O page pinning. Without them (a low RLIMIT_MEMLOCK) I/O still works.
    const std::span<uint8_t> ranges[] = {
        {worker.request.data(), worker.request.size()},
        {worker.reply.data(), worker.reply.size()},
        {worker.ctx->bounce(), IoContext::kBounceBytes}};
    if (auto r = worker.ctx->channel().register_buffers(ranges); !r)
      RAIDFS_LOG(kDebug, "FUSE worker %u: no fixed buffers: %s", worker.index,
                 r.error().message.c_str());
    worker.started = true;
    serve(worker);
  });
}

Result<void> ClassicTransport::run() {
  // The kernel refuses a read whose buffer could not hold the largest request: a WRITE of
  // max_write plus its headers (and never less than FUSE_MIN_READ_BUFFER). One page covers the
  // headers; the largest reply body is a READ of max_pages × 4 KiB.
  const size_t max_write = dispatcher_.options().max_write;
  request_bytes_ = std::max<size_t>(max_write + 4096, FUSE_MIN_READ_BUFFER);
  reply_bytes_ = (max_write + 4095) / 4096 * 4096 + 4096;
  {
    std::lock_guard lock(mu_);
    running_ = true;
    while (workers_.size() < threads_) spawn_locked();
  }
  // Join until no thread is left; grow() may add some meanwhile (under the same lock).
  for (;;) {
    std::thread t;
    {
      std::lock_guard lock(mu_);
      if (unjoined_.empty()) {
        running_ = false;
        finished_ = true;
        break;
      }
      t = std::move(unjoined_.back());
      unjoined_.pop_back();
    }
    t.join();
  }
  const bool any =
      std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) { return w.started; });
  if (!any) return fail_with(workers_.front().setup_error, "no FUSE worker could start: ");
  return {};
}

void ClassicTransport::serve(Worker& worker) {
  const std::span<uint8_t> reply_buffer(worker.reply.data(), worker.reply.size());
  while (!stopping_.load(std::memory_order_relaxed)) {
    uint8_t* const in = worker.request.data() + kWriteDataSkew;
    const ssize_t n = ::read(fd_, in, request_bytes_);
    if (n <= 0) {
      const int e = n == 0 ? ENODEV : errno;
      // ENOENT: the request was interrupted before it was read; EINTR/EAGAIN: nothing read.
      if (e == EINTR || e == EAGAIN || e == ENOENT) continue;
      if (e != ENODEV && e != ECONNABORTED)
        RAIDFS_LOG(kError, "FUSE worker %u: reading the FUSE device: %s", worker.index,
                   std::strerror(e));
      break;  // ENODEV: unmounted (or the connection was aborted)
    }
    const std::span<const uint8_t> bytes(in, static_cast<size_t>(n));
    auto view = RequestDispatcher::split_classic(bytes);
    const Reply reply = view ? dispatcher_.dispatch(*worker.ctx, *view, reply_buffer)
                             : RequestDispatcher::reply_to_unreadable(bytes);
    requests_.fetch_add(1, std::memory_order_relaxed);
    if (!reply.send) continue;

    const fuse_out_header header = reply.out_header();
    iovec iov[3];
    int count = 0;
    iov[count++] = {const_cast<fuse_out_header*>(&header), sizeof header};
    if (reply.error == 0 && reply.fixed_bytes > 0)
      iov[count++] = {const_cast<uint8_t*>(reply.fixed), reply.fixed_bytes};
    if (reply.error == 0 && reply.data_bytes > 0)
      iov[count++] = {const_cast<uint8_t*>(reply.data), reply.data_bytes};
    const ssize_t written = ::writev(fd_, iov, count);
    if (written == static_cast<ssize_t>(header.len)) {
      // The kernel took the INIT reply inside this writev: the io_uring transport may register.
      if (view && view->header.opcode == FUSE_INIT && reply.error == 0 &&
          dispatcher_.initialized() && after_init_ &&
          !init_hook_done_.exchange(true, std::memory_order_acq_rel))
        after_init_();
      continue;
    }
    const int e = written < 0 ? errno : EIO;
    if (e == ENOENT) {
      // The request was interrupted and the kernel dropped it: undo what it will not release.
      if (view) dispatcher_.reply_not_delivered(*view, reply);
      continue;
    }
    if (e == ENODEV || e == ECONNABORTED) break;
    RAIDFS_LOG(kError, "FUSE worker %u: writing a reply (%u bytes): %s", worker.index, header.len,
               std::strerror(e));
  }
}

}  // namespace raidfs::fs
