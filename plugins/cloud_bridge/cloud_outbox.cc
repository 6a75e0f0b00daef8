#include "cloud_outbox.h"

#include <Poco/BinaryReader.h>
#include <Poco/BinaryWriter.h>

#include <cinttypes>
#include <cstdio>
#include <set>
#include <sstream>

namespace hearth::cloud_bridge {
namespace {

constexpr uint8_t kFormatVersion = 1;
constexpr size_t kLoadChunk = 1024;
constexpr const char* kMetaInstance = "instance";
constexpr const char* kMetaNextSeq = "next_seq";
constexpr const char* kMetaDropped = "dropped";

std::optional<uint64_t> parseSeq(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

Result<std::optional<uint64_t>> readMetaNumber(KvStore& store, const char* key) {
  auto v = store.get(CloudOutbox::kMetaCollection, key);
  if (!v) return v.status();
  if (!v.value()) return std::optional<uint64_t>();
  auto n = parseSeq(*v.value());
  if (!n) {
    return Status::error(ErrorCode::kInternal,
                         std::string("outbox meta '") + key + "' is not a number: " + *v.value());
  }
  return std::optional<uint64_t>(*n);
}

}  // namespace

std::string CloudOutbox::key(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64, seq);
  return buf;
}

std::string CloudOutbox::encode(const OutboxMessage& m) {
  std::ostringstream out;
  Poco::BinaryWriter w(out, Poco::BinaryWriter::NETWORK_BYTE_ORDER);
  w << kFormatVersion << static_cast<uint8_t>(m.qos) << m.retain
    << static_cast<Poco::Int64>(m.enqueuedMs) << m.topic << m.payload;
  w.flush();
  return out.str();
}

std::optional<OutboxMessage> CloudOutbox::decode(std::string_view value) {
  std::istringstream in{std::string(value)};
  Poco::BinaryReader r(in, Poco::BinaryReader::NETWORK_BYTE_ORDER);
  uint8_t version = 0, qos = 0;
  bool retain = false;
  Poco::Int64 enqueued = 0;
  OutboxMessage m;
  r >> version;
  if (!r.good() || version != kFormatVersion) return std::nullopt;
  r >> qos >> retain >> enqueued >> m.topic >> m.payload;
  if (r.bad() || in.fail() || qos > 2) return std::nullopt;
  // Nothing may follow the payload.
  if (in.peek() != std::char_traits<char>::eof()) return std::nullopt;
  m.qos = qos;
  m.retain = retain;
  m.enqueuedMs = enqueued;
  return m;
}

Status CloudOutbox::load(const std::function<std::string()>& newInstanceId) {
  index_.clear();
  bytes_ = 0;
  retainedByTopic_.clear();
  retainedTopicOf_.clear();
  coalescedTotal_ = 0;
  cache_.clear();
  cacheBytes_ = 0;
  auto instance = store_.get(kMetaCollection, kMetaInstance);
  if (!instance) return instance.status();
  if (instance.value()) {
    instanceId_ = *instance.value();
  } else {
    instanceId_ = newInstanceId();
    Status s = store_.put(kMetaCollection, kMetaInstance, instanceId_);
    if (!s) return s;
  }
  auto next = readMetaNumber(store_, kMetaNextSeq);
  if (!next) return next.status();
  nextSeq_ = next.value().value_or(0);
  auto dropped = readMetaNumber(store_, kMetaDropped);
  if (!dropped) return dropped.status();
  droppedTotal_ = dropped.value().value_or(0);

  // In chunks, so a large outbox is never copied out of the store at once. Retained records
  // of a topic seen again are superseded (an outbox written before coalescing existed): they
  // are removed by the commit below.
  std::vector<uint64_t> superseded;
  std::string from = key(0);
  for (;;) {
    size_t rows = 0;
    std::optional<uint64_t> last;
    Status s =
        store_.scan(kCollection, from, kLoadChunk, [&](const std::string& k, const std::string& v) {
          ++rows;
          auto seq = parseSeq(k);
          // Not ours (never written by this class), or out of order: key() sorts by seq.
          if (!seq || !index_.append(*seq, v.size())) return true;
          bytes_ += v.size();
          last = seq;
          if (auto m = decode(v); m && m->retain) {
            auto [it, fresh] = retainedByTopic_.emplace(m->topic, *seq);
            if (!fresh) {
              superseded.push_back(it->second);
              retainedTopicOf_.erase(it->second);
              it->second = *seq;
            }
            retainedTopicOf_[*seq] = m->topic;
          }
          return true;
        });
    if (!s) return s;
    if (rows < kLoadChunk || !last) break;
    from = key(*last + 1);
  }
  if (!index_.empty() && index_.back().seq >= nextSeq_) nextSeq_ = index_.back().seq + 1;
  cacheFloor_ = nextSeq_;
  // The bounds may have been lowered since the records were written.
  for (uint64_t old : superseded) retainedTopicOf_.erase(old);
  auto r = commit({}, {}, 0, superseded);
  return r ? Status::ok() : r.status();
}

std::optional<uint64_t> CloudOutbox::oldestSeq() const {
  if (index_.empty()) return std::nullopt;
  return index_.front().seq;
}

std::optional<uint64_t> CloudOutbox::retainedSeq(const std::string& topic) const {
  auto it = retainedByTopic_.find(topic);
  if (it == retainedByTopic_.end()) return std::nullopt;
  return it->second;
}

void CloudOutbox::forgetRetained(uint64_t seq) {
  auto it = retainedTopicOf_.find(seq);
  if (it == retainedTopicOf_.end()) return;
  auto t = retainedByTopic_.find(it->second);
  if (t != retainedByTopic_.end() && t->second == seq) retainedByTopic_.erase(t);
  retainedTopicOf_.erase(it);
}

Result<CloudOutbox::CommitResult> CloudOutbox::commit(std::vector<OutboxMessage> append,
                                                      const std::vector<uint64_t>& acked,
                                                      uint64_t extraDropped) {
  return commit(std::move(append), acked, extraDropped, {});
}

Result<CloudOutbox::CommitResult> CloudOutbox::commit(std::vector<OutboxMessage> append,
                                                      const std::vector<uint64_t>& acked,
                                                      uint64_t extraDropped,
                                                      const std::vector<uint64_t>& superseded) {
  CommitResult res;
  // Plan first, against the in-memory index, so that a failed transaction changes nothing.
  std::set<uint64_t> removed;
  std::set<uint64_t> replaced;  // retained records superseded by a newer one (coalesced)
  uint64_t count = index_.size();
  uint64_t bytes = bytes_;
  for (uint64_t seq : acked) {
    auto size = index_.find(seq);
    if (!size || !removed.insert(seq).second) continue;
    --count;
    bytes -= *size;
  }
  auto replace = [&](uint64_t seq) {
    auto size = index_.find(seq);
    if (!size || removed.count(seq) || !replaced.insert(seq).second) return;
    --count;
    bytes -= *size;
  };
  for (uint64_t seq : superseded) {
    size_t before = replaced.size();
    replace(seq);
    res.coalesced += replaced.size() - before;
  }
  // Only the last retained message of a topic in this batch is kept; it replaces the waiting
  // one of that topic.
  std::vector<bool> skip(append.size(), false);
  {
    std::map<std::string_view, size_t> lastOfTopic;
    for (size_t i = 0; i < append.size(); ++i) {
      if (!append[i].retain) continue;
      auto [it, fresh] = lastOfTopic.emplace(append[i].topic, i);
      if (!fresh) {
        skip[it->second] = true;
        it->second = i;
        ++res.coalesced;
      }
    }
    for (const auto& [topic, i] : lastOfTopic) {
      auto waiting = retainedByTopic_.find(std::string(topic));
      if (waiting == retainedByTopic_.end()) continue;
      size_t before = replaced.size();
      replace(waiting->second);
      res.coalesced += replaced.size() - before;
    }
  }
  struct Fresh {
    uint64_t seq;
    std::string value;
    size_t message;  // index into append
  };
  std::vector<Fresh> fresh;
  fresh.reserve(append.size());
  uint64_t seq = nextSeq_;
  uint64_t dropped = 0;
  for (size_t i = 0; i < append.size(); ++i) {
    if (skip[i]) continue;
    std::string v = encode(append[i]);
    uint64_t s = seq++;
    if (v.size() > limits_.maxBytes) {  // could never fit, even alone
      ++dropped;
      continue;
    }
    ++count;
    bytes += v.size();
    fresh.push_back({s, std::move(v), i});
  }
  std::vector<uint64_t> evicted;
  size_t freshEvicted = 0;
  auto over = [&] { return count > limits_.maxMessages || bytes > limits_.maxBytes; };
  index_.forEach([&](const SeqIndex::Entry& oldest) {
    if (!over()) return false;
    if (removed.count(oldest.seq) || replaced.count(oldest.seq)) return true;
    evicted.push_back(oldest.seq);
    bytes -= oldest.size;
    --count;
    ++dropped;
    return true;
  });
  while (over() && freshEvicted < fresh.size()) {  // the batch alone is too big
    bytes -= fresh[freshEvicted].value.size();
    ++freshEvicted;
    --count;
    ++dropped;
  }
  if (!evicted.empty()) {
    res.firstDroppedSeq = evicted.front();
    res.lastDroppedSeq = freshEvicted > 0 ? fresh[freshEvicted - 1].seq : evicted.back();
  } else if (freshEvicted > 0) {
    res.firstDroppedSeq = fresh.front().seq;
    res.lastDroppedSeq = fresh[freshEvicted - 1].seq;
  }
  dropped += extraDropped;
  if (removed.empty() && replaced.empty() && evicted.empty() && fresh.empty() && append.empty() &&
      dropped == 0) {
    return res;
  }

  Status s = store_.transaction([&]() -> Status {
    for (uint64_t r : removed) {
      Status e = store_.erase(kCollection, key(r));
      if (!e) return e;
    }
    for (uint64_t r : evicted) {
      Status e = store_.erase(kCollection, key(r));
      if (!e) return e;
    }
    for (uint64_t r : replaced) {
      Status e = store_.erase(kCollection, key(r));
      if (!e) return e;
    }
    for (size_t i = freshEvicted; i < fresh.size(); ++i) {
      Status p = store_.put(kCollection, key(fresh[i].seq), fresh[i].value);
      if (!p) return p;
    }
    if (!append.empty()) {
      Status p = store_.put(kMetaCollection, kMetaNextSeq, std::to_string(seq));
      if (!p) return p;
    }
    if (dropped > 0) {
      Status p = store_.put(kMetaCollection, kMetaDropped, std::to_string(droppedTotal_ + dropped));
      if (!p) return p;
    }
    return Status::ok();
  });
  if (!s) return s;

  auto unindex = [&](uint64_t r) {
    if (auto size = index_.erase(r)) bytes_ -= *size;
    uncache(r);
  };
  for (uint64_t r : removed) unindex(r);
  for (uint64_t r : evicted) unindex(r);
  for (uint64_t r : replaced) unindex(r);
  for (uint64_t r : removed) forgetRetained(r);
  for (uint64_t r : evicted) forgetRetained(r);
  for (uint64_t r : replaced) forgetRetained(r);
  for (size_t i = freshEvicted; i < fresh.size(); ++i) {
    const OutboxMessage& m = append[fresh[i].message];
    if (m.retain) {
      retainedByTopic_[m.topic] = fresh[i].seq;
      retainedTopicOf_[fresh[i].seq] = m.topic;
    }
  }
  for (size_t i = freshEvicted; i < fresh.size(); ++i) {
    index_.append(fresh[i].seq, fresh[i].value.size());
    bytes_ += fresh[i].value.size();
    cacheBytes_ += fresh[i].value.size();
    cache_.emplace(fresh[i].seq,
                   Cached{fresh[i].value.size(), std::move(append[fresh[i].message])});
  }
  nextSeq_ = seq;
  if (cacheBytes_ > limits_.cacheBytes) {
    while (!cache_.empty() && cacheBytes_ > limits_.cacheBytes) uncache(cache_.begin()->first);
    cacheFloor_ = cache_.empty() ? nextSeq_ : cache_.begin()->first;
  }
  droppedTotal_ += dropped;
  coalescedTotal_ += res.coalesced;
  res.appended = fresh.size() - freshEvicted;
  res.removed = removed.size();
  res.dropped = dropped;
  return res;
}

void CloudOutbox::uncache(uint64_t seq) {
  auto it = cache_.find(seq);
  if (it == cache_.end()) return;
  cacheBytes_ -= it->second.size;
  cache_.erase(it);
}

Result<std::vector<OutboxRecord>> CloudOutbox::read(uint64_t fromSeq, size_t limit,
                                                    std::vector<uint64_t>* corrupt) {
  std::vector<OutboxRecord> out;
  if (fromSeq >= cacheFloor_) {
    for (auto it = cache_.lower_bound(fromSeq);
         it != cache_.end() && (limit == 0 || out.size() < limit); ++it) {
      out.push_back({it->first, it->second.message});
    }
    return out;
  }
  std::vector<uint64_t> bad;
  Status s = store_.scan(kCollection, key(fromSeq), limit,
                         [&](const std::string& k, const std::string& v) {
                           auto seq = parseSeq(k);
                           if (!seq) return true;
                           auto m = decode(v);
                           if (!m) {
                             bad.push_back(*seq);
                           } else {
                             out.push_back({*seq, std::move(*m)});
                           }
                           return true;
                         });
  if (!s) return s;
  if (!bad.empty()) {
    // Dropped like records over the bounds: counted, never silently.
    Status e = store_.transaction([&]() -> Status {
      for (uint64_t b : bad) {
        Status r = store_.erase(kCollection, key(b));
        if (!r) return r;
      }
      return store_.put(kMetaCollection, kMetaDropped, std::to_string(droppedTotal_ + bad.size()));
    });
    if (!e) return e;
    for (uint64_t b : bad) {
      if (auto size = index_.erase(b)) bytes_ -= *size;
      uncache(b);
      forgetRetained(b);
    }
    droppedTotal_ += bad.size();
    if (corrupt) *corrupt = bad;
  }
  return out;
}

}  // namespace hearth::cloud_bridge
