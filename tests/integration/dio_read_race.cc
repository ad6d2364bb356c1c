// dio_read_race: buffered reads racing asynchronous O_DIRECT writes of the same range must not
// leave old bytes in the page cache once the writes have completed.
//
// Each round r the file (1 MiB) holds pattern r. A reader thread loops 4 KiB buffered preads over
// it on one long-lived descriptor while the main thread writes pattern r+1 over the whole file
// with O_DIRECT, 64 KiB a write in random order, 16 in flight (io_uring, or Linux native AIO as
// libaio issues it). Once every write has completed, a buffered read on the reader's descriptor
// and one on a fresh descriptor must both see pattern r+1 on every page.
//
//   usage: dio_read_race FILE [uring|aio] [ROUNDS]
// Prints one summary line; exits 0 when no stale page was seen, 1 when one was, 2 on an error.
#include <fcntl.h>
#include <liburing.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kFileBytes = 1 << 20;
constexpr size_t kWriteBytes = 64 << 10;
constexpr unsigned kInFlight = 16;

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(2);
}

// Every 8-byte word of page p in round r is (r << 32) | p.
void fill(uint8_t* buf, uint32_t round) {
  for (size_t i = 0; i < kFileBytes; i += 8) {
    const uint64_t v = (uint64_t{round} << 32) | static_cast<uint32_t>(i / kPage);
    std::memcpy(buf + i, &v, 8);
  }
}

size_t stale_pages(const uint8_t* buf, uint32_t round) {
  size_t bad = 0;
  for (size_t p = 0; p < kFileBytes / kPage; ++p) {
    for (size_t i = 0; i < kPage; i += 8) {
      uint64_t v;
      std::memcpy(&v, buf + p * kPage + i, 8);
      if (v != ((uint64_t{round} << 32) | p)) {
        ++bad;
        break;
      }
    }
  }
  return bad;
}

void pread_all(int fd, uint8_t* buf) {
  for (size_t done = 0; done < kFileBytes;) {
    const ssize_t n = ::pread(fd, buf + done, kFileBytes - done, static_cast<off_t>(done));
    if (n <= 0) die("pread");
    done += static_cast<size_t>(n);
  }
}

std::vector<size_t> shuffled_offsets(std::mt19937& rng) {
  std::vector<size_t> offsets;
  for (size_t off = 0; off < kFileBytes; off += kWriteBytes) offsets.push_back(off);
  std::shuffle(offsets.begin(), offsets.end(), rng);
  return offsets;
}

void write_uring(io_uring& ring, int fd, const uint8_t* src, std::mt19937& rng) {
  const std::vector<size_t> offsets = shuffled_offsets(rng);
  size_t next = 0, done = 0;
  unsigned in_flight = 0;
  while (done < offsets.size()) {
    while (in_flight < kInFlight && next < offsets.size()) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      const size_t off = offsets[next++];
      io_uring_prep_write(sqe, fd, src + off, kWriteBytes, off);
      ++in_flight;
    }
    io_uring_submit(&ring);
    io_uring_cqe* cqe;
    if (io_uring_wait_cqe(&ring, &cqe) < 0) die("io_uring_wait_cqe");
    if (cqe->res != static_cast<int>(kWriteBytes)) {
      std::fprintf(stderr, "dio_read_race: O_DIRECT write returned %d\n", cqe->res);
      std::exit(2);
    }
    io_uring_cqe_seen(&ring, cqe);
    --in_flight;
    ++done;
  }
}

void write_aio(aio_context_t aio, int fd, const uint8_t* src, std::mt19937& rng) {
  const std::vector<size_t> offsets = shuffled_offsets(rng);
  std::vector<iocb> cbs(offsets.size());
  size_t next = 0, done = 0;
  unsigned in_flight = 0;
  while (done < offsets.size()) {
    while (in_flight < kInFlight && next < offsets.size()) {
      iocb& cb = cbs[next];
      cb = {};
      cb.aio_lio_opcode = IOCB_CMD_PWRITE;
      cb.aio_fildes = static_cast<uint32_t>(fd);
      cb.aio_buf = reinterpret_cast<uintptr_t>(src + offsets[next]);
      cb.aio_nbytes = kWriteBytes;
      cb.aio_offset = static_cast<int64_t>(offsets[next]);
      iocb* list[1] = {&cb};
      if (::syscall(SYS_io_submit, aio, 1, list) != 1) die("io_submit");
      ++next;
      ++in_flight;
    }
    io_event events[kInFlight];
    const long n = ::syscall(SYS_io_getevents, aio, 1, kInFlight, events, nullptr);
    if (n < 0) die("io_getevents");
    for (long i = 0; i < n; ++i) {
      if (events[i].res != static_cast<int64_t>(kWriteBytes)) {
        std::fprintf(stderr, "dio_read_race: O_DIRECT write returned %lld\n",
                     static_cast<long long>(events[i].res));
        std::exit(2);
      }
      --in_flight;
      ++done;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dio_read_race FILE [uring|aio] [ROUNDS]\n");
    return 2;
  }
  const char* path = argv[1];
  const std::string mode = argc > 2 ? argv[2] : "uring";
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 20;
  if (mode != "uring" && mode != "aio") {
    std::fprintf(stderr, "dio_read_race: mode must be uring or aio, not %s\n", mode.c_str());
    return 2;
  }
  void* src_mem = nullptr;
  void* check_mem = nullptr;
  if (::posix_memalign(&src_mem, kPage, kFileBytes) || ::posix_memalign(&check_mem, kPage, kFileBytes))
    die("posix_memalign");
  auto* src = static_cast<uint8_t*>(src_mem);
  auto* check = static_cast<uint8_t*>(check_mem);

  // Round 0, written buffered and synced, out of the page cache.
  const int setup = ::open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (setup < 0) die("open");
  fill(src, 0);
  if (::pwrite(setup, src, kFileBytes, 0) != static_cast<ssize_t>(kFileBytes)) die("pwrite");
  if (::fsync(setup) != 0) die("fsync");
  ::posix_fadvise(setup, 0, 0, POSIX_FADV_DONTNEED);
  ::close(setup);

  const int writer_fd = ::open(path, O_RDWR | O_DIRECT);
  const int reader_fd = ::open(path, O_RDONLY);
  if (writer_fd < 0 || reader_fd < 0) die("open");
  io_uring ring{};
  aio_context_t aio = 0;
  if (mode == "uring" && io_uring_queue_init(kInFlight, &ring, 0) < 0) die("io_uring_queue_init");
  if (mode == "aio" && ::syscall(SYS_io_setup, kInFlight, &aio) < 0) die("io_setup");

  std::mt19937 rng(1);
  size_t stale_rounds = 0, stale_long_lived = 0, stale_reopened = 0;
  for (uint32_t r = 1; r <= static_cast<uint32_t>(rounds); ++r) {
    fill(src, r);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> loops{0};
    std::thread reader([&] {
      alignas(kPage) static thread_local uint8_t page[kPage];
      while (!stop) {
        for (size_t off = 0; off < kFileBytes && !stop; off += kPage)
          if (::pread(reader_fd, page, kPage, static_cast<off_t>(off)) != static_cast<ssize_t>(kPage))
            die("reader pread");
        ++loops;
      }
    });
    while (loops == 0) ::usleep(100);  // the reader has the old pages cached
    if (mode == "uring")
      write_uring(ring, writer_fd, src, rng);
    else
      write_aio(aio, writer_fd, src, rng);
    stop = true;  // every write has completed
    reader.join();
    pread_all(reader_fd, check);
    const size_t long_lived = stale_pages(check, r);
    const int fresh = ::open(path, O_RDONLY);
    if (fresh < 0) die("open");
    pread_all(fresh, check);
    const size_t reopened = stale_pages(check, r);
    ::close(fresh);
    if (long_lived || reopened) ++stale_rounds;
    stale_long_lived += long_lived;
    stale_reopened += reopened;
  }
  std::printf("%s, %d rounds: %zu with stale pages after the writes completed "
              "(%zu pages on the reader's descriptor, %zu on a fresh one)\n",
              mode.c_str(), rounds, stale_rounds, stale_long_lived, stale_reopened);
  return stale_rounds == 0 ? 0 : 1;
}
