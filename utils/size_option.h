// size_option: a CLI11 transform for size arguments ("64K", "1M", "4096", "2GiB"): binary units
// (K = 1024), a whole number, nothing negative. A bad argument is one line saying what is wrong
// with it and what is expected, rather than CLI11's overflow message for "-4K".
#pragma once

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdint>
#include <string>

namespace raidfs::utils {

inline CLI::Validator size_option() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const std::string what = "'" + text + "' is not a size (expected a whole number with an "
                                 "optional unit, such as 4096, 64K or 1M)";
        size_t i = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
        if (i == 0) return what;
        std::string unit = text.substr(i);
        for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (unit.ends_with("IB")) unit.resize(unit.size() - 2);
        else if (unit.ends_with("B")) unit.resize(unit.size() - 1);
        int shift = 0;
        if (unit == "K") shift = 10;
        else if (unit == "M") shift = 20;
        else if (unit == "G") shift = 30;
        else if (unit == "T") shift = 40;
        else if (!unit.empty()) return what;
        uint64_t n = 0;
        for (size_t j = 0; j < i; ++j) {
          if (n > (UINT64_MAX - 9) / 10) return "'" + text + "' is too large";
          n = n * 10 + static_cast<uint64_t>(text[j] - '0');
        }
        if (shift > 0 && n > (UINT64_MAX >> shift)) return "'" + text + "' is too large";
        text = std::to_string(n << shift);
        return {};
      },
      "SIZE");
}

}  // namespace raidfs::utils
