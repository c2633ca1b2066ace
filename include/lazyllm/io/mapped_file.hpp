// SPDX-License-Identifier: MIT
// A read-only memory mapping of a whole file.
#pragma once
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

class MappedFile {
 public:
  /// Maps `path`; throws FormatError naming the file when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path) {
    return std::shared_ptr<const MappedFile>(new MappedFile(path));
  }
  ~MappedFile() {
    if (data_ && size_) ::munmap(data_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(data_), size_}; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  explicit MappedFile(const std::filesystem::path& p) : path_(p.string()) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw FormatError(path_, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw FormatError(path_, "not a regular file");
    }
    size_ = std::size_t(st.st_size);
    if (size_ > 0) {
      data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (data_ == MAP_FAILED) {
        const int e = errno;
        data_ = nullptr;
        ::close(fd);
        throw FormatError(path_, std::string("cannot map: ") + std::strerror(e));
      }
    }
    ::close(fd);
  }
  std::string path_;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace detail {
/// Reads a little-endian POD at `offset` of a mapped file (bounds already checked by the caller).
template <class T>
T read_pod(std::span<const std::byte> b, std::size_t offset) {
  T v;
  std::memcpy(&v, b.data() + offset, sizeof(T));
  return v;
}
}  // namespace detail

}  // namespace lazyllm
