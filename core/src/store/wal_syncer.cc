#include "store/wal_syncer.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hearth {

WalSyncer::WalSyncer(std::string dbPath, Done done)
    : path_(std::move(dbPath)), done_(std::move(done)) {}

WalSyncer::~WalSyncer() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  conn_.reset();
  if (walFd_ >= 0) close(walFd_);
}

Status WalSyncer::start() {
  // The WAL file by its name: fdatasync of any descriptor of the file flushes what every
  // descriptor wrote, so the hub loop's connection keeps writing through its own. SQLite keeps
  // the file while a connection is open (and this one's checkpoint connection is).
  std::string wal = path_ + "-wal";
  walFd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
  if (walFd_ < 0) {
    return Status::error(ErrorCode::kInternal,
                         "database: cannot open " + wal + ": " + std::strerror(errno));
  }
  // The WAL's directory entry is durable too (it may be new since the last start).
  std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/'));
  int dirFd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    [[maybe_unused]] int rc = fsync(dirFd);  // best effort, as SQLite's own directory sync
    close(dirFd);
  }
  try {
    conn_ = std::make_unique<SQLite::Database>(path_, SQLite::OPEN_READWRITE);
    conn_->exec("PRAGMA busy_timeout=5000");
    conn_->exec("PRAGMA synchronous=FULL");  // a checkpoint syncs the WAL, then the database
  } catch (const std::exception& e) {
    return Status::error(ErrorCode::kInternal,
                         std::string("database: checkpoint connection: ") + e.what());
  }
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

void WalSyncer::request(uint64_t gen) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (gen <= requested_) return;
    requested_ = gen;
  }
  cv_.notify_one();
}

void WalSyncer::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || requested_ > flushed_; });
    if (requested_ == flushed_) {
      if (stopping_) return;
      continue;
    }
    // Everything the hub loop committed before this point is in the page cache; the flush that
    // starts after it covers it. Commits that arrive meanwhile wait for the next flush.
    uint64_t target = requested_;
    lock.unlock();
    std::string error = flush();
    flushes_++;
    done_(target, error);
    if (error.empty() && walFrames_.load(std::memory_order_relaxed) >= kCheckpointFrames) {
      checkpoint();
    }
    lock.lock();
    flushed_ = target;
  }
}

std::string WalSyncer::flush() {
  if (fdatasync(walFd_) == 0) return "";
  return std::string("fdatasync of ") + path_ + "-wal failed: " + std::strerror(errno);
}

void WalSyncer::checkpoint() {
  // PASSIVE: copies what no reader still needs and never blocks the hub loop's writes; the
  // next write transaction starts the WAL over once it has all been copied.
  int logFrames = 0, copied = 0;
  int rc = sqlite3_wal_checkpoint_v2(conn_->getHandle(), "main", SQLITE_CHECKPOINT_PASSIVE,
                                     &logFrames, &copied);
  if (rc == SQLITE_OK) {
    checkpoints_++;
    if (copied == logFrames) walFrames_.store(0, std::memory_order_relaxed);
  }
}

}  // namespace hearth
