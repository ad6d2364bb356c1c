// Result<T>: the error-as-value type used on every library boundary of raidfs.
//
// A Result holds either a T or an Error. An Error is an errno value (the natural error space of a
// filesystem: EIO, EINVAL, ENOSPC, ...) plus one human-readable line that says what went wrong
// and, where it helps, what to do. Libraries never throw across their boundary and never print;
// the FUSE edge turns Error::code into the reply, the programs print Error::message.
//
// Usage:
//   Result<Geometry> g = Geometry::create(6, 2, 65536);
//   if (!g) return std::unexpected(g.error());
//   RAIDFS_TRY(auto sb, Superblock::read(fd));   // early-return on error
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

namespace raidfs {

struct Error {
  int code = EIO;       // errno value
  std::string message;  // one line, no trailing newline
};

template <class T = void>
using Result = std::expected<T, Error>;

// Builds the unexpected value for a failing Result: `return fail(EINVAL, "chunk size ...");`
inline std::unexpected<Error> fail(int code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

// Prefixes context to an error on its way up: `return fail_with(r.error(), "member 3: ")`.
inline std::unexpected<Error> fail_with(const Error& e, const std::string& prefix) {
  return std::unexpected(Error{e.code, prefix + e.message});
}

}  // namespace raidfs

#define RAIDFS_CONCAT_INNER(a, b) a##b
#define RAIDFS_CONCAT(a, b) RAIDFS_CONCAT_INNER(a, b)

// Evaluates `expr` (a Result<void>); returns its error from the enclosing function if it failed.
#define RAIDFS_CHECK(expr)                                              \
  do {                                                                  \
    auto raidfs_check_result_ = (expr);                                 \
    if (!raidfs_check_result_)                                          \
      return std::unexpected(std::move(raidfs_check_result_).error());  \
  } while (0)

// Evaluates `expr` (a Result<T>); on success binds its value to `decl`, else returns the error.
#define RAIDFS_TRY(decl, expr) RAIDFS_TRY_IMPL(RAIDFS_CONCAT(raidfs_try_, __LINE__), decl, expr)
#define RAIDFS_TRY_IMPL(tmp, decl, expr)                        \
  auto tmp = (expr);                                            \
  if (!tmp) return std::unexpected(std::move(tmp).error());     \
  decl = std::move(tmp).value()
