// FuseRingQueue: see fuse_ring.h. The SQEs are filled by hand: liburing 2.3 (Debian 12) has no
// helper for IORING_OP_URING_CMD, and the layout is kernel ABI (include/uapi/linux/io_uring.h):
// cmd_op shares the 64-bit `off` field, and with IORING_SETUP_SQE128 the 80-byte command area
// starts at offset 48, where struct fuse_uring_cmd_req goes.
#include "fs/fuse_ring.h"

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>

#include "base/log.h"
#include "raid/uring_member_io.h"

namespace raidfs::fs {
namespace {

constexpr uint64_t kStopTag = UINT64_MAX;  // the stop eventfd's poll; entries are tagged 0..N-1
constexpr size_t kSqeBytes = 128;          // IORING_SETUP_SQE128
constexpr size_t kSqeCmdOffset = 48;       // sqe->cmd: the command area of a 128-byte SQE
static_assert(offsetof(io_uring_sqe, addr3) == kSqeCmdOffset);
static_assert(kSqeCmdOffset + sizeof(fuse_uring_cmd_req) <= kSqeBytes);
static_assert(sizeof(fuse_uring_req_header) % alignof(fuse_uring_req_header) == 0);

// REGISTER answered EAGAIN means the kernel has not taken INIT yet; the transport starts only
// after the INIT reply was written, so this is a short race at most. Bounded: 2 s of 1 ms waits.
constexpr unsigned kAgainMax = 2000;
// A refused COMMIT_AND_FETCH loses the kernel's entry; it is replaced by a fresh REGISTER of the
// same buffers, at most this many times per queue (each leaves a dead entry in the kernel until
// the connection ends).
constexpr unsigned kReregisterMax = 64;

// Errors that mean the FUSE connection ended (unmount, abort, the daemon's ring closing).
bool is_connection_end(int error) {
  return error == ENOTCONN || error == ENODEV || error == ECONNABORTED || error == ECANCELED;
}

const char* command_name(uint32_t cmd_op) {
  return cmd_op == FUSE_IO_URING_CMD_REGISTER ? "REGISTER" : "COMMIT_AND_FETCH";
}

}  // namespace

struct FuseRingQueue::Ring {
  io_uring ring{};
  bool ready = false;
  ~Ring() {
    // Closing the ring cancels the commands still in the kernel (IO_URING_F_CANCEL).
    if (ready) io_uring_queue_exit(&ring);
  }
};

struct FuseRingQueue::Entry {
  EntryState state = EntryState::kIdle;
  uint32_t index = 0;
  fuse_uring_req_header* header = nullptr;  // in headers_
  uint8_t* payload = nullptr;               // in payloads_, 4 KiB-aligned
  iovec iov[2]{};                           // REGISTER's buffers; the kernel reads them at issue
  uint32_t cmd_op = FUSE_IO_URING_CMD_INVALID;  // the command in the kernel (kFetching)
  uint64_t commit_id = 0;                   // the request in the buffers (kServing)
  unsigned again = 0;                       // consecutive EAGAIN/EINTR completions
  fuse_in_header request{};                 // the request last answered, and its reply: what
  Reply reply;                              // a refused commit must undo (an OPEN's handle)
};

FuseRingQueue::FuseRingQueue(RequestDispatcher& dispatcher, FuseRingConfig config)
    : dispatcher_(dispatcher), config_(std::move(config)) {}

FuseRingQueue::~FuseRingQueue() {
  ring_.reset();  // first: the kernel must be done with the buffers before they go
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

Result<std::unique_ptr<FuseRingQueue>> FuseRingQueue::create(Filesystem& fs,
                                                             RequestDispatcher& dispatcher,
                                                             FuseRingConfig config) {
  assert(config.entries > 0 && config.payload_bytes % 4096 == 0);
  const std::string who = "io_uring queue " + std::to_string(config.qid) + ": ";
  std::unique_ptr<FuseRingQueue> q(new FuseRingQueue(dispatcher, std::move(config)));
  const FuseRingConfig& c = q->config_;

  // One SQE per entry (each has at most one command in the kernel) and one for the stop poll.
  q->ring_ = std::make_unique<Ring>();
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(c.entries + 1, &q->ring_->ring, &params);
  if (rc == -EINVAL) {  // before 6.1: no DEFER_TASKRUN (the FUSE ring needs 6.14 anyway)
    params = {};
    params.flags = IORING_SETUP_SQE128;
    rc = io_uring_queue_init_params(c.entries + 1, &q->ring_->ring, &params);
  }
  if (rc < 0)
    return fail(-rc, who + "cannot set up an io_uring with 128-byte SQEs: " + std::strerror(-rc));
  q->ring_->ready = true;

  q->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (q->stop_fd_ < 0) return fail(errno, who + "eventfd: " + std::strerror(errno));

  q->headers_ = AlignedBuffer(size_t{c.entries} * sizeof(fuse_uring_req_header));
  q->payloads_ = AlignedBuffer(size_t{c.entries} * c.payload_bytes);
  q->entries_ = std::make_unique<Entry[]>(c.entries);
  for (uint32_t i = 0; i < c.entries; ++i) {
    Entry& e = q->entries_[i];
    e.index = i;
    e.header = reinterpret_cast<fuse_uring_req_header*>(q->headers_.data() +
                                                        i * sizeof(fuse_uring_req_header));
    e.payload = q->payloads_.data() + i * c.payload_bytes;
    e.iov[0] = {e.header, sizeof(fuse_uring_req_header)};
    e.iov[1] = {e.payload, c.payload_bytes};
  }

  RAIDFS_TRY(q->ctx_, fs.make_io_context());
  // The payload buffers (and the bounce buffer for unaligned reads) become fixed buffers of the
  // member ring, so member I/O into and out of them needs no page pinning per I/O.
  const std::span<uint8_t> ranges[] = {{q->payloads_.data(), q->payloads_.size()},
                                       {q->ctx_->bounce(), IoContext::kBounceBytes}};
  if (auto r = q->ctx_->channel().register_buffers(ranges); r) {
    q->buffers_registered_ = true;
  } else {
    RAIDFS_LOG(kWarning, "%sthe payload buffers are not fixed buffers (member I/O pins pages per "
               "request): %s", who.c_str(), r.error().message.c_str());
  }
  return q;
}

void FuseRingQueue::stop() {
  const uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);  // wakes the poll in run(); the count only grows
}

void FuseRingQueue::advance(Entry& e, Event event) {
  switch (e.state) {
    case EntryState::kIdle:
      assert(event == Event::kSubmitted);
      e.state = EntryState::kFetching;
      return;
    case EntryState::kFetching:
      // kSubmitted: a fresh REGISTER replaced a refused commit; kRetry: the same command again.
      assert(event == Event::kRequest || event == Event::kRetry || event == Event::kSubmitted ||
             event == Event::kEnd);
      if (event == Event::kRequest) e.state = EntryState::kServing;
      if (event == Event::kEnd) e.state = EntryState::kEnded;
      return;
    case EntryState::kServing:
      assert(event == Event::kCommitted || event == Event::kEnd);
      e.state = event == Event::kCommitted ? EntryState::kFetching : EntryState::kEnded;
      return;
    case EntryState::kEnded:
      assert(!"an ended entry takes no events");
      return;
  }
}

bool FuseRingQueue::queue_command(Entry& e, uint32_t cmd_op) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe == nullptr) return false;
  std::memset(sqe, 0, kSqeBytes);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fixed_file_ ? 0 : fuse_fd_;
  sqe->flags = fixed_file_ ? IOSQE_FIXED_FILE : 0;
  sqe->cmd_op = cmd_op;
  fuse_uring_cmd_req req{};
  req.qid = config_.qid;
  if (cmd_op == FUSE_IO_URING_CMD_REGISTER) {
    sqe->addr = reinterpret_cast<uintptr_t>(e.iov);
    sqe->len = 2;  // header, payload
  } else {
    req.commit_id = e.commit_id;
  }
  std::memcpy(reinterpret_cast<uint8_t*>(sqe) + kSqeCmdOffset, &req, sizeof req);
  io_uring_sqe_set_data64(sqe, e.index);
  e.cmd_op = cmd_op;
  return true;
}

Result<void> FuseRingQueue::run(int fuse_fd, const std::function<void()>& registered) {
  const std::string who = "io_uring queue " + std::to_string(config_.qid) + ": ";
  fuse_fd_ = fuse_fd;
  // A fixed file spares the kernel a descriptor lookup per command; not essential.
  fixed_file_ = io_uring_register_files(&ring_->ring, &fuse_fd_, 1) == 0;

  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  assert(sqe != nullptr);  // the SQ is empty and holds entries + 1
  std::memset(sqe, 0, kSqeBytes);
  io_uring_prep_poll_add(sqe, stop_fd_, POLLIN);
  io_uring_sqe_set_data64(sqe, kStopTag);
  for (uint32_t i = 0; i < config_.entries; ++i) {
    Entry& e = entries_[i];
    if (!queue_command(e, FUSE_IO_URING_CMD_REGISTER))
      return fail(EIO, who + "no free SQE for a REGISTER");  // impossible: sized for all
    advance(e, Event::kSubmitted);
  }
  live_entries_ = config_.entries;
  // The kernel adds each entry to its queue as the REGISTER is issued, inside this submit.
  const int submitted = io_uring_submit(&ring_->ring);
  if (submitted < 0 && submitted != -EINTR && submitted != -EAGAIN && submitted != -EBUSY)
    return fail(-submitted, who + "io_uring_enter: " + std::strerror(-submitted));
  if (registered) registered();

  while (live_entries_ > 0 && !stopping_) {
    if (io_uring_cq_ready(&ring_->ring) == 0) placement_.on_sleep();
    const int rc = io_uring_submit_and_wait(&ring_->ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
      return fail(-rc, who + "io_uring_enter: " + std::strerror(-rc));
    io_uring_cqe* cqe = nullptr;
    while (!stopping_ && io_uring_peek_cqe(&ring_->ring, &cqe) == 0) {
      const uint64_t tag = io_uring_cqe_get_data64(cqe);
      const int32_t res = cqe->res;
      io_uring_cqe_seen(&ring_->ring, cqe);
      on_completion(tag, res);
      // The reply goes at once, not with the next wait: its caller is waiting, and the requests
      // still to be served here may take long. (At iodepth 1, folding it into the waiting
      // io_uring_enter measured the same: one system call saved is lost in the noise.)
      if (io_uring_sq_ready(&ring_->ring) > 0) io_uring_submit(&ring_->ring);
      if (move_to_) {  // after the reply went: the move costs a migration
        config_.move(*move_to_);
        spread_.store(*move_to_ == QueuePlacement::Where::kSpread, std::memory_order_relaxed);
        moves_.store(placement_.moves(), std::memory_order_relaxed);
        move_to_.reset();
      }
    }
  }
  return {};
}

void FuseRingQueue::end_entry(Entry& e, int error) {
  advance(e, Event::kEnd);
  --live_entries_;
  if (!is_connection_end(error) && live_entries_ == 0)
    RAIDFS_LOG(kWarning, "io_uring queue %u: every entry ended (last: %s)", config_.qid,
               std::strerror(error));
}

void FuseRingQueue::on_completion(uint64_t tag, int32_t res) {
  if (tag == kStopTag) {
    stopping_ = true;
    return;
  }
  if (tag >= config_.entries || entries_[tag].state != EntryState::kFetching) {
    RAIDFS_LOG(kError, "io_uring queue %u: completion for entry %llu that waits for none",
               config_.qid, static_cast<unsigned long long>(tag));
    return;
  }
  Entry& e = entries_[tag];
  if (res == 0) {  // a request is in the entry's buffers
    e.again = 0;
    advance(e, Event::kRequest);
    fuse_uring_ent_in_out info;
    std::memcpy(&info, &e.header->ring_ent_in_out, sizeof info);
    e.commit_id = info.commit_id;
    if (e.commit_id == 0) {
      // The kernel never sends 0 (it is the request's unique): these bytes are not a request,
      // and a reply to them could not be committed.
      RAIDFS_LOG(kError, "io_uring queue %u: a completion without a request (commit id 0)",
                 config_.qid);
      end_entry(e, EPROTO);
      return;
    }
    serve(e);
    if (config_.move) {
      if (auto where = placement_.on_request(e.request.opcode == FUSE_READ)) move_to_ = where;
    }
    if (!queue_command(e, FUSE_IO_URING_CMD_COMMIT_AND_FETCH)) {
      RAIDFS_LOG(kError, "io_uring queue %u: no free SQE to commit a reply", config_.qid);
      end_entry(e, EIO);  // impossible: one SQE per entry
      return;
    }
    advance(e, Event::kCommitted);
    return;
  }

  const int error = -res;
  if (error == EAGAIN || error == EINTR) {
    if (++e.again > kAgainMax) {
      end_entry(e, error);
      return;
    }
    if (error == EAGAIN) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    advance(e, Event::kRetry);
    queue_command(e, e.cmd_op);  // the slot this completion freed is there
    return;
  }
  if (is_connection_end(error)) {
    end_entry(e, error);
    return;
  }
  if (e.cmd_op == FUSE_IO_URING_CMD_REGISTER) {
    // The kernel turned io_uring off for this connection (fc->io_uring = 0) and serves over
    // /dev/fuse from now on; this entry is no use.
    end_entry(e, error);
    if (!refused_reported_ && config_.on_refused) {
      refused_reported_ = true;
      config_.on_refused(Error{error, std::string("the kernel refused io_uring REGISTER on queue ") +
                                          std::to_string(config_.qid) + ": " +
                                          std::strerror(error)});
    }
    return;
  }
  // COMMIT_AND_FETCH refused: the kernel no longer knows the request (it was aborted), so the
  // reply never arrived — undo what it would have released — and the entry is not in the kernel
  // any more: register its buffers afresh, or the queue would shrink with every such refusal.
  RAIDFS_LOG(kWarning, "io_uring queue %u: %s of request %llu refused: %s", config_.qid,
             command_name(e.cmd_op), static_cast<unsigned long long>(e.commit_id),
             std::strerror(error));
  RequestView gone;
  gone.header = e.request;
  dispatcher_.reply_not_delivered(gone, e.reply);
  if (reregisters_ >= kReregisterMax) {
    end_entry(e, error);
    return;
  }
  ++reregisters_;
  queue_command(e, FUSE_IO_URING_CMD_REGISTER);
  advance(e, Event::kSubmitted);
}

void FuseRingQueue::serve(Entry& e) {
  const std::span<uint8_t> payload(e.payload, config_.payload_bytes);
  auto view = RequestDispatcher::split_uring(*e.header, payload);
  if (view) {
    e.request = view->header;
    e.reply = dispatcher_.dispatch(*ctx_, *view, payload);
  } else {
    std::memcpy(&e.request, e.header->in_out, sizeof e.request);
    e.reply = RequestDispatcher::reply_to_unreadable(
        std::span(reinterpret_cast<const uint8_t*>(e.header->in_out), sizeof(fuse_in_header)));
  }
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (!e.reply.send) {
    // FORGET, INTERRUPT and the like travel over /dev/fuse; one that came here anyway still
    // needs its entry back, so it is committed with an error the kernel drops.
    e.reply.send = true;
    e.reply.error = -ENOSYS;
  }

  // The reply: the out header in the in_out area, the body at payload offset 0. READ data is
  // there already (the dispatcher read it into the payload buffer); fixed structs are copied.
  const fuse_out_header out = e.reply.out_header();
  std::memcpy(e.header->in_out, &out, sizeof out);
  if (e.reply.error == 0) {
    if (e.reply.fixed_bytes > 0) {
      std::memcpy(e.payload, e.reply.fixed, e.reply.fixed_bytes);
    } else if (e.reply.data_bytes > 0 && e.reply.data != e.payload) {
      std::memmove(e.payload, e.reply.data, e.reply.data_bytes);  // not expected: see Reply
    }
  }
  const auto payload_sz = static_cast<uint32_t>(e.reply.body_bytes());
  std::memcpy(reinterpret_cast<uint8_t*>(&e.header->ring_ent_in_out) +
                  offsetof(fuse_uring_ent_in_out, payload_sz),
              &payload_sz, sizeof payload_sz);

  if (auto* io = dynamic_cast<UringMemberIo*>(&ctx_->channel().io()))
    fixed_ios_.store(io->fixed_request_count(), std::memory_order_relaxed);
}

}  // namespace raidfs::fs
