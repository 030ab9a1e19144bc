#pragma once

// A scratch directory of its own under the system temp directory, removed
// with everything in it when the object goes. Shared by unit and e2e tests;
// no Catch here (a failed mkdtemp throws, which fails the test).

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace balctl::test {

class temp_dir {
public:
  explicit temp_dir(const std::string& prefix = "balctl-test") {
    std::string tmpl =
      (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + " failed");
    }
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
};

} // namespace balctl::test
