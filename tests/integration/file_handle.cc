// file_handle: name_to_handle_at / open_by_handle_at from the shell, for the export test.
//
//   file_handle save PATH HANDLE_FILE     writes PATH's file handle (as the kernel encodes it)
//   file_handle cat MOUNTPOINT HANDLE_FILE   opens the handle read-only and copies the file to stdout
//   file_handle stat MOUNTPOINT HANDLE_FILE  opens it (a directory too) and prints "ino mode"
// Exit: 0 done; 2 the handle is stale (ESTALE), 1 any other error (message on stderr).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int die(const std::string& what) {
  const int e = errno;
  std::fprintf(stderr, "file_handle: %s: %s\n", what.c_str(), std::strerror(e));
  return e == ESTALE ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: file_handle save PATH HANDLE_FILE | cat|stat MOUNTPOINT HANDLE_FILE\n");
    return 1;
  }
  const std::string verb = argv[1];
  std::vector<char> buf(sizeof(file_handle) + MAX_HANDLE_SZ);
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  if (verb == "save") {
    fh->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(AT_FDCWD, argv[2], fh, &mount_id, 0) != 0) return die(std::string("name_to_handle_at ") + argv[2]);
    FILE* out = std::fopen(argv[3], "wb");
    if (!out || std::fwrite(buf.data(), 1, sizeof(file_handle) + fh->handle_bytes, out) == 0) return die(argv[3]);
    std::fclose(out);
    return 0;
  }
  FILE* in = std::fopen(argv[3], "rb");
  if (!in) return die(argv[3]);
  const size_t n = std::fread(buf.data(), 1, buf.size(), in);
  std::fclose(in);
  if (n < sizeof(file_handle)) return die("short handle file");
  const int mount_fd = ::open(argv[2], O_RDONLY | O_DIRECTORY);
  if (mount_fd < 0) return die(argv[2]);
  const int fd = open_by_handle_at(mount_fd, fh, O_RDONLY);
  if (fd < 0) return die("open_by_handle_at");
  if (verb == "stat") {
    struct stat st;
    if (::fstat(fd, &st) != 0) return die("fstat");
    std::printf("%llu %o\n", static_cast<unsigned long long>(st.st_ino), st.st_mode);
    return 0;
  }
  char data[65536];
  for (;;) {
    const ssize_t r = ::read(fd, data, sizeof data);
    if (r < 0) return die("read");
    if (r == 0) break;
    if (std::fwrite(data, 1, static_cast<size_t>(r), stdout) != static_cast<size_t>(r)) return die("write");
  }
  return 0;
}
