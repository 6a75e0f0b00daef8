#pragma once
// The hub database's disk flushes, off the hub loop. The hub loop commits every transaction to
// SQLite's WAL without waiting for the disk (synchronous=NORMAL: atomic, and it survives the
// process being killed); this thread makes those commits durable with one fdatasync of the WAL
// file for everything committed up to the moment the flush starts, and checkpoints the WAL into
// the database file on its own SQLite connection, so no fsync ever runs on the hub loop.
// Database owns it (Database::startBackgroundSync) and keeps the bookkeeping of which commit is
// on disk; docs/coop-api.md "What a crash can lose" says what this means for each answer.

#include <SQLiteCpp/SQLiteCpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hearth/status.h"

namespace hearth {

class WalSyncer {
 public:
  // done(gen, error) is called on the syncer's thread once every commit numbered up to gen is
  // on disk (error empty), or when the disk refused a flush (error says why).
  using Done = std::function<void(uint64_t gen, const std::string& error)>;
  WalSyncer(std::string dbPath, Done done);
  ~WalSyncer();  // flushes what was requested, then stops the thread
  WalSyncer(const WalSyncer&) = delete;
  WalSyncer& operator=(const WalSyncer&) = delete;

  // Opens the WAL file and the checkpointing connection and starts the thread. The database
  // must already be in WAL mode with its WAL file present (a first read creates it).
  Status start();

  // Thread-safe: commits up to gen are written to the WAL; flush them.
  void request(uint64_t gen);
  // Thread-safe: the WAL now holds this many frames (SQLite's wal_hook); past
  // kCheckpointFrames the thread checkpoints after its next flush.
  void noteWalFrames(int frames) { walFrames_.store(frames, std::memory_order_relaxed); }
  static constexpr int kCheckpointFrames = 1000;  // SQLite's own wal_autocheckpoint default

  uint64_t flushes() const { return flushes_.load(); }
  uint64_t checkpoints() const { return checkpoints_.load(); }

 private:
  void run();
  std::string flush();  // fdatasync of the WAL; error text or empty
  void checkpoint();

  std::string path_;
  Done done_;
  int walFd_ = -1;
  std::unique_ptr<SQLite::Database> conn_;  // the syncer thread's own connection, checkpoints

  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t requested_ = 0;
  uint64_t flushed_ = 0;
  bool stopping_ = false;
  std::atomic<int> walFrames_{0};
  std::atomic<uint64_t> flushes_{0};
  std::atomic<uint64_t> checkpoints_{0};
  std::thread thread_;
};

}  // namespace hearth
