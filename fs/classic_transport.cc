// ClassicTransport: see classic_transport.h.
#include "fs/classic_transport.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "raid/aligned_buffer.h"

namespace raidfs::fs {

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

Result<void> ClassicTransport::run() {
  // The kernel refuses a read whose buffer could not hold the largest request: a WRITE of
  // max_write plus its headers (and never less than FUSE_MIN_READ_BUFFER). One page covers the
  // headers; the largest reply body is a READ of max_pages × 4 KiB.
  const size_t max_write = dispatcher_.options().max_write;
  const size_t request_bytes = std::max<size_t>(max_write + 4096, FUSE_MIN_READ_BUFFER);
  const size_t reply_bytes = (max_write + 4095) / 4096 * 4096 + 4096;

  std::vector<Worker> workers(threads_);
  std::vector<std::thread> threads;
  threads.reserve(threads_);
  for (unsigned i = 0; i < threads_; ++i) {
    threads.emplace_back([this, &worker = workers[i], i, request_bytes, reply_bytes] {
      worker.index = i;
      // Made here, not by run()'s thread: a member ring is used only by the thread that made it.
      auto ctx = fs_.make_io_context();
      if (!ctx) {
        worker.setup_error = ctx.error();
        RAIDFS_LOG(kWarning, "FUSE worker %u cannot start: %s", i, ctx.error().message.c_str());
        return;
      }
      worker.ctx = std::move(*ctx);
      worker.request = AlignedBuffer(request_bytes);
      worker.reply = AlignedBuffer(reply_bytes);
      worker.started = true;
      serve(worker);
    });
  }
  for (std::thread& t : threads) t.join();
  const bool any =
      std::any_of(workers.begin(), workers.end(), [](const Worker& w) { return w.started; });
  if (!any) return fail_with(workers[0].setup_error, "no FUSE worker could start: ");
  return {};
}

void ClassicTransport::serve(Worker& worker) {
  const std::span<uint8_t> reply_buffer(worker.reply.data(), worker.reply.size());
  while (!stopping_.load(std::memory_order_relaxed)) {
    const ssize_t n = ::read(fd_, worker.request.data(), worker.request.size());
    if (n <= 0) {
      const int e = n == 0 ? ENODEV : errno;
      // ENOENT: the request was interrupted before it was read; EINTR/EAGAIN: nothing read.
      if (e == EINTR || e == EAGAIN || e == ENOENT) continue;
      if (e != ENODEV && e != ECONNABORTED)
        RAIDFS_LOG(kError, "FUSE worker %u: reading the FUSE device: %s", worker.index,
                   std::strerror(e));
      break;  // ENODEV: unmounted (or the connection was aborted)
    }
    const std::span<const uint8_t> bytes(worker.request.data(), static_cast<size_t>(n));
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
    if (written == static_cast<ssize_t>(header.len)) continue;
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
