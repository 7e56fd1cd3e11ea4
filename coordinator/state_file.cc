#include "coordinator/state_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/layout_proto.h"
#include "common/parallel_config.h"
#include "coordinator/coordinator_internal.h"
#include "google/protobuf/util/json_util.h"
#include "spdlog/spdlog.h"

namespace cohort::coordinator {
namespace {

std::string Errno(int err) { return std::strerror(err); }

absl::Status ErrnoStatus(int err, const std::string& what) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, ": ", Errno(err)));
}

// The directory holding `path` ("." for a bare file name).
std::string DirOf(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Makes a rename or an unlink in `dir` durable.
absl::Status SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open the directory ", dir));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus(err, absl::StrCat("cannot fsync the directory ", dir));
  return absl::OkStatus();
}

// Creates a fresh temporary next to `path`: O_CREAT|O_EXCL (mkostemp), so an existing entry at
// that name — a planted symbolic link included — makes it pick another name, never open it.
// Returns the descriptor and sets `*tmp` to its name.
absl::StatusOr<int> CreateTemporary(const std::string& path, std::string* tmp) {
  std::string name = path + ".tmp-XXXXXX";
  const int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot create a temporary file next to ", path));
  }
  *tmp = name;
  return fd;
}

absl::Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus(n < 0 ? errno : EIO, "write failed");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

absl::Status ValidatePool(const v1::DurablePool& pool) {
  const std::string where = absl::StrCat("pool '", pool.name(), "'");
  if (pool.world_size() < 0 || pool.world_size() > kMaxWorldSize) {
    return Invalid(absl::StrCat(where, ": worldSize ", pool.world_size(), " is outside [0, ",
                                kMaxWorldSize, "]"));
  }
  if (pool.has_config()) {
    const ParallelConfig config = FromProto(pool.config());
    if (absl::StatusOr<DerivedSizes> valid = ValidateParallelConfig(config); !valid.ok()) {
      return Invalid(absl::StrCat(where, ": its config is invalid: ", valid.status().message()));
    }
    if (config.world_size != pool.world_size()) {
      return Invalid(absl::StrCat(where, ": worldSize ", pool.world_size(),
                                  " differs from its config's world of ", config.world_size));
    }
  } else if (pool.world_size() != 0) {
    return Invalid(absl::StrCat(where, ": worldSize ", pool.world_size(),
                                " without a config (a pool without a config has worldSize 0)"));
  }
  if (!pool.options().backend().empty() && !internal::IsKnownBackend(pool.options().backend())) {
    return Invalid(absl::StrCat(where, ": unknown backend '", pool.options().backend(),
                                "' (gloo, nccl or none)"));
  }
  if (pool.generation() < 0) {
    return Invalid(absl::StrCat(where, ": generation ", pool.generation(), " is negative"));
  }
  const int64_t limit = pool.world_size() > 0 ? pool.world_size() : kMaxWorldSize;
  std::map<int32_t, std::string> holder;  // rank -> identity
  for (const auto& [identity, rank] : pool.ranks()) {
    if (identity.empty()) return Invalid(absl::StrCat(where, ": an identity is empty"));
    if (identity.size() > StateFile::kMaxNameLength) {
      return Invalid(absl::StrCat(where, ": an identity is ", identity.size(),
                                  " bytes long (at most ", StateFile::kMaxNameLength, ")"));
    }
    if (rank < 0 || rank >= limit) {
      return Invalid(absl::StrCat(where, ": rank ", rank, " of '", identity, "' is outside ",
                                  pool.world_size() > 0 ? "the world [0, " : "[0, ", limit, ")"));
    }
    auto [it, inserted] = holder.emplace(rank, identity);
    if (!inserted) {
      // Map order is unspecified: name the two identities in a stable order.
      const auto& [a, b] = std::minmax(it->second, identity);
      return Invalid(
          absl::StrCat(where, ": rank ", rank, " is held by both '", a, "' and '", b, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status StateFile::Validate(const v1::DurableState& state) {
  std::set<std::string> names;
  for (const v1::DurablePool& pool : state.pools()) {
    if (pool.name().empty()) return Invalid("a pool has an empty name");
    if (pool.name().size() > kMaxNameLength) {
      return Invalid(absl::StrCat("a pool name is ", pool.name().size(), " bytes long (at most ",
                                  kMaxNameLength, ")"));
    }
    if (!names.insert(pool.name()).second) {
      return Invalid(absl::StrCat("pool '", pool.name(), "' appears twice"));
    }
    if (absl::Status s = ValidatePool(pool); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::DurableState> StateFile::Load(const std::string& path) {
  // O_NONBLOCK: a FIFO planted at the path must not block the open (it is then refused).
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return v1::DurableState();  // a first start
    if (err == ELOOP) {
      return absl::FailedPreconditionError(
          absl::StrCat("state file ", path, " is a symbolic link; give its target instead"));
    }
    return ErrnoStatus(err, absl::StrCat("cannot read the state file ", path));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("state file ", path, " is not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxFileSize) {
    close(fd);
    return absl::DataLossError(absl::StrCat("state file ", path, " is ", st.st_size,
                                            " bytes, more than a state file can be (", kMaxFileSize,
                                            ")"));
  }
  std::string text;
  char buf[65536];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return ErrnoStatus(err, absl::StrCat("cannot read the state file ", path));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxFileSize) {
      close(fd);
      return absl::DataLossError(absl::StrCat("state file ", path, " grew past ", kMaxFileSize,
                                              " bytes while being read"));
    }
  }
  close(fd);
  v1::DurableState state;
  if (auto s = google::protobuf::util::JsonStringToMessage(text, &state); !s.ok()) {
    // The parser's message may go on with the offending text and a caret: keep its first line.
    std::string why(s.message());
    why = why.substr(0, why.find('\n'));
    return absl::DataLossError(absl::StrCat("state file ", path, " is not a valid state (",
                                            text.size(), " bytes", text.empty() ? ", empty" : "",
                                            "; truncated or corrupt?): ", why));
  }
  if (absl::Status s = Validate(state); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("state file ", path, ": ", s.message()));
  }
  return state;
}

absl::Status StateFile::Save(const std::string& path, const v1::DurableState& state) {
  std::string json;
  if (auto s = google::protobuf::util::MessageToJsonString(state, &json); !s.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot encode the state for ", path, ": ", s.ToString()));
  }
  json += "\n";
  std::string tmp;
  absl::StatusOr<int> fd = CreateTemporary(path, &tmp);
  if (!fd.ok()) return fd.status();
  auto fail = [&](absl::Status s) {
    unlink(tmp.c_str());
    return absl::Status(s.code(), absl::StrCat("cannot write the state file ", path, " (via ", tmp,
                                               "): ", s.message()));
  };
  absl::Status written = WriteAll(*fd, json);
  // mkostemp creates the file 0600 already; say it, whatever the umask or libc.
  if (written.ok() && fchmod(*fd, 0600) != 0) written = ErrnoStatus(errno, "fchmod failed");
  if (written.ok() && fsync(*fd) != 0) written = ErrnoStatus(errno, "fsync failed");
  if (close(*fd) != 0 && written.ok()) written = ErrnoStatus(errno, "close failed");
  if (!written.ok()) return fail(written);
  // rename() replaces the entry at `path` itself, never what a link there points to.
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail(ErrnoStatus(errno, "rename failed"));
  if (absl::Status s = SyncDir(DirOf(path)); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("state file ", path, " written, but ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status StateFile::CheckUsable(const std::string& path) {
  auto refuse = [&](const std::string& why, const std::string& fix) {
    return absl::FailedPreconditionError(absl::StrCat("--state-file ", path, ": ", why, "; ", fix));
  };
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      const std::string target = std::filesystem::read_symlink(path, ec).string();
      return refuse(absl::StrCat("is a symbolic link (to ", ec ? "?" : target,
                                 "); the file is replaced by renaming a new one over it, "
                                 "which would replace the link, not its target"),
                    "give the real file's path with --state-file");
    }
    if (S_ISDIR(st.st_mode)) {
      return refuse("is a directory",
                    absl::StrCat("give a file path, e.g. --state-file ", path, "/state.json"));
    }
    if (!S_ISREG(st.st_mode)) {
      return refuse("is not a regular file", "give the path of a regular file");
    }
  } else if (errno != ENOENT && errno != ENOTDIR) {
    const int err = errno;
    return refuse(absl::StrCat("cannot be examined: ", Errno(err)),
                  "check the path and its directory's permissions");
  }
  const std::string dir = DirOf(path);
  if (stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return refuse(absl::StrCat("its directory ", dir, " does not exist"),
                    absl::StrCat("create it (mkdir -p ", dir, ") or choose another path"));
    }
    return refuse(absl::StrCat("its directory ", dir, " cannot be examined: ", Errno(err)),
                  "check its permissions");
  }
  if (!S_ISDIR(st.st_mode)) {
    return refuse(absl::StrCat(dir, " is not a directory"), "choose another path");
  }
  // The only sure test of writability (permissions, read-only mounts, ACLs): create a file.
  std::string tmp;
  absl::StatusOr<int> fd = CreateTemporary(path, &tmp);
  if (!fd.ok()) {
    return refuse(absl::StrCat("no file can be created in ", dir, " (", fd.status().message(), ")"),
                  "make the directory writable by the coordinator's user, or choose another "
                  "path");
  }
  close(*fd);
  unlink(tmp.c_str());
  return absl::OkStatus();
}

std::string StateFile::CorruptPath(const std::string& path, absl::Time now) {
  return absl::StrCat(path, ".corrupt-",
                      absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone()));
}

absl::StatusOr<v1::DurableState> StateFile::Open(const std::string& path, bool reset,
                                                 absl::Time now) {
  if (absl::Status s = CheckUsable(path); !s.ok()) return s;
  absl::StatusOr<v1::DurableState> state = Load(path);
  if (state.ok()) {
    if (reset) {
      spdlog::info("--state-file-reset: state file {} is valid and was loaded as usual", path);
    }
    return state;
  }
  const bool bad_content =
      absl::IsDataLoss(state.status()) || absl::IsInvalidArgument(state.status());
  if (!bad_content) return state.status();  // cannot be read: no reset can help
  const std::string aside = CorruptPath(path, now);
  std::string reason(state.status().message());
  if (!reason.empty() && reason.back() == '.') reason.pop_back();
  if (!reset) {
    return absl::FailedPreconditionError(
        absl::StrCat(reason,
                     ". The coordinator will not start over it (that would lose "
                     "every pool's ranks); the file is left as it is. Repair it, or start with "
                     "--state-file-reset to move it aside to ",
                     aside, " and start with an empty state"));
  }
  // Move it aside without replacing an earlier copy from the same second.
  std::string target = aside;
  for (int i = 1;; ++i) {
    if (renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) {
      break;
    }
    if (errno != EEXIST || i > 100) {
      return ErrnoStatus(errno, absl::StrCat("--state-file-reset: cannot move the state file ",
                                             path, " aside to ", target));
    }
    target = absl::StrCat(aside, "-", i);
  }
  if (absl::Status s = SyncDir(DirOf(path)); !s.ok()) return s;
  spdlog::warn("{}; --state-file-reset: moved it aside to {}; starting with an empty state", reason,
               target);
  return v1::DurableState();
}

}  // namespace cohort::coordinator
