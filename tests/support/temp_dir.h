// TempDir: a private directory for a test's image files, removed with everything in it at scope
// exit. Made under $RAIDFS_TEST_DIR if set, else /dev/shm (tmpfs: fast, and O_DIRECT works there
// on Linux >= 6.6), else /tmp.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace raidfs::testing {

class TempDir {
 public:
  TempDir() : TempDir(default_root()) {}
  // Under `root` instead (a test that needs a particular filesystem).
  explicit TempDir(const std::string& root) {
    std::string pattern = root + "/raidfs-test-XXXXXX";
    path_ = ::mkdtemp(pattern.data()) ? pattern : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  static std::string default_root() {
    const char* base = std::getenv("RAIDFS_TEST_DIR");
    return base ? base : (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
  }

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Creates (or resizes) a sparse image file of `bytes` bytes and returns its path.
  std::string image(const std::string& name, uint64_t bytes) const {
    std::string p = file(name);
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
      if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) p.clear();
      ::close(fd);
    }
    return p;
  }

 private:
  std::string path_;
};

}  // namespace raidfs::testing
