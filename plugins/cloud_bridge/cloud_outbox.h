#pragma once
// CloudOutbox: the bridge's durable, bounded FIFO of outbound messages, kept in the plugin's
// KvStore (the hub's SQLite database, WAL, synchronous=FULL).
//
// Every outbound message is appended here before it is sent and removed only when the cloud
// broker acknowledged it, so a message survives cloud outages and hearthd restarts. Keys are
// zero-padded sequence numbers ("outbox" collection), so the store's key order is the FIFO order;
// sequence numbers are never reused (the next one is stored in the "meta" collection), which makes
// "<instance>-<seq>" a stable message id across restarts.
//
// Bounds: at most maxMessages records and maxBytes of encoded records. When a commit would exceed
// either, the oldest records are dropped (oldest first, also ones just appended if the batch alone
// is too big) and counted; the running total is stored with the outbox. A single message larger
// than maxBytes is dropped on arrival.
//
// Retained messages are coalesced: a retained message is state ("the latest value of this
// topic"), so only the latest retained message per cloud topic needs to wait. Appending a
// retained message removes the retained record of the same topic still waiting (in the same
// transaction; also one earlier in the same batch), which is counted apart from the drops
// (coalescedTotal) and is not a loss: the cloud gets the newest state. Non-retained messages are
// never coalesced, and a retained record that was sent and awaits its PUBACK may be removed too
// (its acknowledgement is then ignored). Without this a status topic that describes the outbox
// (hub/status carries its depth) would feed the outbox itself while the cloud is down.
//
// Reads are served from memory for records this process appended (see OutboxLimits::cacheBytes)
// and from the store otherwise, with the same result.
//
// Not thread-safe: the plugin uses it from the hub loop only. A failed commit changes nothing,
// neither on disk nor in memory.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/host.h"
#include "seq_index.h"

namespace hearth::cloud_bridge {

struct OutboxMessage {
  std::string topic;  // the cloud topic (already rewritten)
  std::string payload;
  int qos = 1;
  bool retain = false;
  int64_t enqueuedMs = 0;  // wall clock, for the age shown in status
};

struct OutboxRecord {
  uint64_t seq = 0;
  OutboxMessage message;
};

struct OutboxLimits {
  uint64_t maxMessages = 100000;
  uint64_t maxBytes = 64ull << 20;
  // Records appended by this process are also kept in memory up to this many (encoded) bytes,
  // so that sending them does not read them back from the store. Not a bound: the oldest
  // cached records are simply read from the store again. A cached record costs about three
  // times its encoded size in memory (a 70-byte record about 220 bytes), so 64 KiB of records
  // is about 200 KB of RSS: some 900 small records, several in-flight windows (256), while a
  // long backlog is read from the store in batches.
  uint64_t cacheBytes = 64ull << 10;
};

class CloudOutbox {
 public:
  static constexpr const char* kCollection = "outbox";
  static constexpr const char* kMetaCollection = "meta";

  CloudOutbox(KvStore& store, OutboxLimits limits) : store_(store), limits_(limits) {}

  // Rebuilds the in-memory index from the store. On first use the outbox gets an instance id from
  // newInstanceId (stored, so message ids stay unique across restarts). Must be called once
  // before anything else.
  Status load(const std::function<std::string()>& newInstanceId);

  // What one commit did.
  struct CommitResult {
    size_t appended = 0;           // records written (not dropped)
    size_t removed = 0;            // acknowledged records removed
    uint64_t dropped = 0;          // records dropped by this commit (bounds or extraDropped)
    uint64_t firstDroppedSeq = 0;  // range of sequence numbers dropped for the bounds, when
    uint64_t lastDroppedSeq = 0;   // dropped > extraDropped
    uint64_t coalesced = 0;        // waiting retained records replaced by newer ones
  };

  // In one store transaction: removes the acknowledged records (unknown seqs are ignored),
  // appends `append` in order with fresh sequence numbers, drops the oldest records while over
  // the bounds, and adds extraDropped (messages the caller lost before they reached the outbox)
  // to the dropped total. On error nothing changed.
  Result<CommitResult> commit(std::vector<OutboxMessage> append, const std::vector<uint64_t>& acked,
                              uint64_t extraDropped = 0);

  // Up to `limit` records (0 = all) with seq >= fromSeq, in order. Records that cannot be decoded
  // (a damaged database) are dropped, counted and reported in *corrupt.
  Result<std::vector<OutboxRecord>> read(uint64_t fromSeq, size_t limit,
                                         std::vector<uint64_t>* corrupt = nullptr);

  uint64_t depth() const { return index_.size(); }
  uint64_t bytes() const { return bytes_; }
  uint64_t droppedTotal() const { return droppedTotal_; }
  // Retained records replaced by a newer retained message of the same topic, since load().
  uint64_t coalescedTotal() const { return coalescedTotal_; }
  // The waiting retained record of a cloud topic, if any.
  std::optional<uint64_t> retainedSeq(const std::string& topic) const;
  uint64_t nextSeq() const { return nextSeq_; }
  std::optional<uint64_t> oldestSeq() const;
  bool contains(uint64_t seq) const { return index_.contains(seq); }
  const std::string& instanceId() const { return instanceId_; }
  const OutboxLimits& limits() const { return limits_; }

  // Store encoding, public for tests.
  static std::string key(uint64_t seq);
  static std::string encode(const OutboxMessage& m);
  static std::optional<OutboxMessage> decode(std::string_view value);

 private:
  KvStore& store_;
  OutboxLimits limits_;
  SeqIndex index_;  // seq -> encoded size
  uint64_t bytes_ = 0;
  uint64_t nextSeq_ = 0;
  uint64_t droppedTotal_ = 0;
  uint64_t coalescedTotal_ = 0;
  std::string instanceId_;
  // The waiting retained records, both ways (few: one per retained topic).
  std::map<std::string, uint64_t> retainedByTopic_;
  std::map<uint64_t, std::string> retainedTopicOf_;
  void forgetRetained(uint64_t seq);
  // Every indexed record with seq >= cacheFloor_ is in cache_.
  struct Cached {
    uint64_t size;  // encoded, as in index_
    OutboxMessage message;
  };
  std::map<uint64_t, Cached> cache_;
  uint64_t cacheFloor_ = 0;
  uint64_t cacheBytes_ = 0;

  void uncache(uint64_t seq);
  // commit() that also removes `superseded` (retained records found replaced at load).
  Result<CommitResult> commit(std::vector<OutboxMessage> append, const std::vector<uint64_t>& acked,
                              uint64_t extraDropped, const std::vector<uint64_t>& superseded);
};

}  // namespace hearth::cloud_bridge
