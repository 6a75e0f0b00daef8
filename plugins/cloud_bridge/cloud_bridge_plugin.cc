#include "cloud_bridge_plugin.h"

#include <Poco/DigestEngine.h>
#include <malloc.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <random>

namespace hearth::cloud_bridge {
namespace {

using std::chrono::milliseconds;

// Status is published on change, at most this often (hub/status is a retained message).
constexpr milliseconds kStatusInterval{250};
// Drops are logged at once, then at most this often with the count in between.
constexpr milliseconds kDropLogInterval{5000};
// Retained topics whose latest message is held in memory while the disk is full.
constexpr size_t kMaxHeldRetained = 1024;
// How often an outbox on a full disk tries again to store the retained state it holds.
constexpr milliseconds kFullRetry{5000};
// How long stop() waits for an I/O thread blocked in name resolution or a TCP connect.
constexpr milliseconds kShutdownGrace{3000};
// Receive Maximum we announce to the local broker: it may send this many QoS 1 messages ahead of
// our PUBACKs. mosquitto counts them apart from its per-client queue (max_queued_messages,
// default 1000), beyond which it drops messages for a client that falls behind; the largest
// value keeps a burst from a fast local publisher in flight instead of dropped.
constexpr int kLocalReceiveMaximum = 65535;
constexpr uint32_t kLocalSessionExpirySec = 3600;
constexpr milliseconds kLocalReconnectMin{500};
constexpr milliseconds kLocalReconnectMax{5000};
// Acknowledged messages are removed from the outbox with the next new messages, or after this
// long, or once this many are pending.
constexpr milliseconds kAckDelay{100};
constexpr size_t kAckBatch = 1024;
// A burst of local messages (a batch this large) goes through the heap twice: queued by the
// local connection's thread, then held by the commit. Once no burst came for kTrimQuiet, the
// free pages it left are given back to the system (malloc_trim), instead of staying resident
// as the process's high-water mark.
constexpr size_t kBurstBatch = 256;
constexpr milliseconds kTrimQuiet{1000};

Status configError(const std::string& key, const std::string& message) {
  return Status::error(ErrorCode::kInvalidRequest, "plugins.cloud_bridge." + key + ": " + message);
}

// The first line of a password file (no trailing newline / CR).
Result<std::string> readPasswordFile(const std::string& key, const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in) return configError(key, "cannot read " + path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  return line;
}

Status requireReadable(const std::string& key, const std::string& path) {
  if (path.empty()) return Status::ok();
  std::ifstream in(path);
  if (!in) return configError(key, "cannot read " + path);
  return Status::ok();
}

std::string randomHex(size_t bytes) {
  std::random_device rd;
  Poco::DigestEngine::Digest random(bytes);
  for (auto& b : random) b = static_cast<unsigned char>(rd() & 0xff);
  return Poco::DigestEngine::digestToHex(random);
}

// FNV-1a, to give each set of local subscriptions its own persistent local session.
std::string shortHash(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08" PRIx32, h);
  return buf;
}

}  // namespace

CloudBridgePlugin::CloudBridgePlugin(PluginContext& ctx) : ctx_(ctx) {}

CloudBridgePlugin::~CloudBridgePlugin() {
  // The links call back into this object until they are joined; do it while every member is
  // still alive (stop() normally did already).
  if (cloud_) cloud_->shutdown(kShutdownGrace);
  if (local_) local_->shutdown(kShutdownGrace);
  cloud_.reset();
  local_.reset();
}

Status CloudBridgePlugin::validate(const ConfigView& c) {
  const std::string protocol = c.getString("protocol");
  if (protocol != "mqtt5" && protocol != "mqtt311") {
    return configError("protocol", "expected mqtt5 or mqtt311, got '" + protocol + "'");
  }
  const bool noCert = c.getString("cert_file").empty();
  if (noCert != c.getString("key_file").empty()) {
    return configError(noCert ? "cert_file" : "key_file", "cert_file and key_file go together");
  }
  auto rules = TopicRules::parse(c.getJson("rules"), protocol == "mqtt311");
  if (!rules) return configError("rules", rules.status().message());
  return Status::ok();
}

Status CloudBridgePlugin::readSettings() {
  const ConfigView& c = ctx_.config();
  Settings s;
  LinkOptions& cloud = s.cloud;
  cloud.side = LinkSide::kCloud;
  cloud.host = c.getString("host");
  if (cloud.host.empty()) {
    return configError("host", "not set: name the cloud broker, or set enabled: false");
  }
  cloud.port = static_cast<int>(c.getInt("port"));
  if (Status v = validate(c); !v) return v;
  cloud.mqtt5 = c.getString("protocol") == "mqtt5";
  cloud.clientId = c.getString("client_id");
  if (!cloud.clientId.empty() && !isValidIdentifier(cloud.clientId)) {
    return configError("client_id", "'" + cloud.clientId + "' is not [A-Za-z0-9._:-]{1,64}");
  }
  cloud.username = c.getString("username");
  auto password = readPasswordFile("password_file", c.getString("password_file"));
  if (!password) return password.status();
  cloud.password = password.value();
  if (!cloud.password.empty() && cloud.username.empty()) {
    return configError("username", "required with password_file");
  }
  cloud.tls.enabled = c.getBool("tls");
  cloud.tls.caFile = c.getString("ca_file");
  cloud.tls.certFile = c.getString("cert_file");
  cloud.tls.keyFile = c.getString("key_file");
  cloud.tls.alpn = c.getString("alpn");
  if (!cloud.tls.enabled &&
      (!cloud.tls.caFile.empty() || !cloud.tls.certFile.empty() || !cloud.tls.alpn.empty())) {
    return configError("tls", "false, but ca_file/cert_file/alpn are set");
  }
  for (const char* key : {"ca_file", "cert_file", "key_file"}) {
    Status r = requireReadable(key, c.getString(key));
    if (!r) return r;
  }
  cloud.keepaliveSec = static_cast<int>(c.getDuration("keepalive").count() / 1000);
  int64_t expiry = c.getDuration("session_expiry").count() / 1000;
  cloud.sessionExpirySec = static_cast<uint32_t>(std::min<int64_t>(expiry, UINT32_MAX));
  cloud.cleanStart = expiry == 0;
  cloud.connectTimeout = c.getDuration("connect_timeout");

  s.reconnectMin = c.getDuration("reconnect_min");
  s.reconnectMax = c.getDuration("reconnect_max");
  if (s.reconnectMin > s.reconnectMax) {
    return configError("reconnect_min", "must not exceed reconnect_max");
  }
  s.inflight = static_cast<size_t>(c.getInt("inflight"));
  s.limits.maxMessages = static_cast<uint64_t>(c.getInt("max_messages"));
  s.limits.maxBytes = static_cast<uint64_t>(c.getInt("max_bytes"));

  s.rulesJson = c.getJson("rules");
  auto rules = TopicRules::parse(s.rulesJson, !cloud.mqtt5);
  if (!rules) return configError("rules", rules.status().message());
  rules_ = std::move(rules.value());
  for (const auto& sub : rules_.subscriptions(Direction::kIn)) {
    cloud.subscriptions.push_back({sub.filter, 1, cloud.mqtt5 ? sub.subscriptionId : 0});
  }

  LinkOptions& local = s.local;
  local.side = LinkSide::kLocal;
  local.host = c.getString("local_host");
  local.port = static_cast<int>(c.getInt("local_port"));
  local.username = c.getString("local_username");
  auto localPassword = readPasswordFile("local_password_file", c.getString("local_password_file"));
  if (!localPassword) return localPassword.status();
  local.password = localPassword.value();
  local.mqtt5 = true;
  local.keepaliveSec = 30;
  // A persistent local session: what is published while hearthd restarts waits in the broker.
  local.cleanStart = false;
  local.sessionExpirySec = kLocalSessionExpirySec;
  local.receiveMaximum = kLocalReceiveMaximum;
  local.connectTimeout = milliseconds(10000);
  for (const auto& sub : rules_.subscriptions(Direction::kOut)) {
    local.subscriptions.push_back({sub.filter, 1, sub.subscriptionId});
  }
  settings_ = std::move(s);
  return Status::ok();
}

Status CloudBridgePlugin::start() {
  Status s = readSettings();
  if (!s) return s;
  outbox_ = std::make_unique<CloudOutbox>(ctx_.store(), settings_.limits);
  s = outbox_->load([] { return randomHex(8); });
  if (!s) return Status::error(s.code(), "outbox: " + s.message());

  const std::string& instance = outbox_->instanceId();
  if (settings_.cloud.clientId.empty()) settings_.cloud.clientId = "hearth-" + instance;
  std::string localFilters;
  for (const auto& sub : settings_.local.subscriptions) localFilters += sub.filter + "\n";
  settings_.local.clientId = "hearth-bridge-" + instance + "-" + shortHash(localFilters);

  std::random_device rd;
  cloudBackoff_ = std::make_unique<util::Backoff>(settings_.reconnectMin, settings_.reconnectMax,
                                                  (uint64_t{rd()} << 32) | rd());
  localBackoff_ = std::make_unique<util::Backoff>(kLocalReconnectMin, kLocalReconnectMax, rd());
  status_.endpoint = settings_.cloud.host + ":" + std::to_string(settings_.cloud.port);
  cursor_ = outbox_->oldestSeq().value_or(outbox_->nextSeq());

  size_t outRules = 0, inRules = 0;
  for (const auto& r : rules_.rules()) (r.direction == Direction::kOut ? outRules : inRules)++;
  if (rules_.empty()) ctx_.logger().warn("no rules configured: nothing is bridged");
  ctx_.logger().info("bridging to " + status_.endpoint + " as " + settings_.cloud.clientId + " (" +
                     std::to_string(outRules) + " out, " + std::to_string(inRules) +
                     " in rules); outbox: " + std::to_string(outbox_->depth()) +
                     " messages waiting, " + std::to_string(outbox_->droppedTotal()) +
                     " dropped so far");

  LinkListener* listener = this;
  local_ = std::make_unique<MqttLink>(settings_.local, listener);
  cloud_ = std::make_unique<MqttLink>(settings_.cloud, listener);
  local_->start();
  cloud_->start();
  started_ = true;
  connectLocal();
  connectCloud();
  return Status::ok();
}

void CloudBridgePlugin::stop() {
  if (!started_) return;
  started_ = false;
  for (Timer* t :
       {&cloudTimer_, &localTimer_, &statusTimer_, &dropLogTimer_, &ackTimer_, &fullRetryTimer_,
        &trimTimer_}) {
    t->cancel();
  }
  // Local first: after it is joined no more local messages arrive.
  if (!local_->shutdown(kShutdownGrace)) {
    ctx_.logger().warn("local connection thread did not stop in time; detached");
  }
  if (!cloud_->shutdown(kShutdownGrace)) {
    ctx_.logger().warn(
        "cloud connection thread did not stop in time (blocked connecting); detached");
  }
  // The local broker has handed these over (and got its PUBACK): commit them rather than lose
  // them.
  std::deque<LinkMessage> locals;
  uint64_t lost;
  {
    std::lock_guard<std::mutex> lock(eventsMutex_);
    locals.swap(localMessages_);
    events_.clear();
    lost = lostBeforeOutbox_;
    lostBeforeOutbox_ = 0;
  }
  std::vector<uint64_t> acked;
  acked.swap(pendingAcks_);
  commit(std::move(locals), acked, lost);
  logDrops();
  ctx_.logger().info("stopped; " + std::to_string(outbox_->depth()) +
                     " messages stay in the outbox");
}

// --- I/O threads ---------------------------------------------------------------------------

void CloudBridgePlugin::onLinkUp(LinkSide side, uint64_t attempt, bool sessionPresent) {
  Event e;
  e.kind = Event::Kind::kUp;
  e.side = side;
  e.attempt = attempt;
  e.sessionPresent = sessionPresent;
  enqueue(std::move(e));
}

void CloudBridgePlugin::onLinkDown(LinkSide side, uint64_t attempt, std::string error) {
  Event e;
  e.kind = Event::Kind::kDown;
  e.side = side;
  e.attempt = attempt;
  e.text = std::move(error);
  enqueue(std::move(e));
}

void CloudBridgePlugin::onLinkMessage(LinkSide side, uint64_t attempt, LinkMessage message) {
  if (side == LinkSide::kLocal) {
    std::lock_guard<std::mutex> lock(eventsMutex_);
    // Bounded like the outbox: if the hub loop falls this far behind, the oldest go first.
    if (localMessages_.size() >= settings_.limits.maxMessages) {
      localMessages_.pop_front();
      ++lostBeforeOutbox_;
    }
    localMessages_.push_back(std::move(message));
    scheduleDrainLocked();
    return;
  }
  Event e;
  e.kind = Event::Kind::kMessage;
  e.side = side;
  e.attempt = attempt;
  e.message = std::move(message);
  enqueue(std::move(e));
}

void CloudBridgePlugin::onLinkPublished(LinkSide side, uint64_t attempt, int mid, int reasonCode) {
  if (side == LinkSide::kLocal) return;  // deliveries in are not tracked
  Event e;
  e.kind = Event::Kind::kPublished;
  e.side = side;
  e.attempt = attempt;
  e.mid = mid;
  e.reasonCode = reasonCode;
  enqueue(std::move(e));
}

void CloudBridgePlugin::onLinkWarning(LinkSide side, uint64_t attempt, std::string warning) {
  Event e;
  e.kind = Event::Kind::kWarning;
  e.side = side;
  e.attempt = attempt;
  e.text = std::move(warning);
  enqueue(std::move(e));
}

void CloudBridgePlugin::enqueue(Event e) {
  std::lock_guard<std::mutex> lock(eventsMutex_);
  events_.push_back(std::move(e));
  scheduleDrainLocked();
}

void CloudBridgePlugin::scheduleDrainLocked() {
  if (drainPosted_) return;
  drainPosted_ = true;
  // One drain per batch: whatever queues up while the hub loop is busy goes into one commit.
  // Dropped by the host once the plugin has stopped, so `this` needs no guard.
  ctx_.post([this] { drain(); });
}

// --- hub loop ------------------------------------------------------------------------------

void CloudBridgePlugin::drain() {
  std::vector<Event> events;
  std::deque<LinkMessage> locals;
  uint64_t lost;
  {
    std::lock_guard<std::mutex> lock(eventsMutex_);
    events.swap(events_);
    locals.swap(localMessages_);
    lost = lostBeforeOutbox_;
    lostBeforeOutbox_ = 0;
    drainPosted_ = false;
  }
  for (Event& e : events) handle(e, pendingAcks_);
  // Acknowledgements freed window slots: refill them from what is already stored, so the cloud
  // connection stays busy while this batch is committed.
  pump();
  // New messages are committed at once (before they can be sent, and because the local broker
  // has our PUBACK for them). Removing acknowledged ones can wait a little and share a commit:
  // should hearthd die first, they are merely sent again.
  if (!locals.empty() || lost > 0 || pendingAcks_.size() >= kAckBatch) {
    std::vector<uint64_t> acked;
    acked.swap(pendingAcks_);
    const bool burst = locals.size() >= kBurstBatch;
    commit(std::move(locals), acked, lost);
    pump();
    if (burst) trimTimer_ = ctx_.after(kTrimQuiet, [] { ::malloc_trim(0); });
  } else if (!pendingAcks_.empty() && !ackTimer_.armed()) {
    ackTimer_ = ctx_.after(kAckDelay, [this] {
      std::vector<uint64_t> acked;
      acked.swap(pendingAcks_);
      commit({}, acked, 0);
      updateStatus();
    });
  }
  updateStatus();
}

void CloudBridgePlugin::handle(Event& e, std::vector<uint64_t>& acked) {
  Logger& log = ctx_.logger();
  if (e.side == LinkSide::kLocal) {
    if (e.attempt != localAttempt_) return;
    switch (e.kind) {
      case Event::Kind::kUp:
        localUp_ = true;
        status_.localConnected = true;
        status_.localError.clear();
        localBackoff_->reset();
        log.info("connected to the local broker " + settings_.local.host + ":" +
                 std::to_string(settings_.local.port) + " as " + settings_.local.clientId);
        break;
      case Event::Kind::kDown: {
        localUp_ = false;
        status_.localConnected = false;
        ctx_.count("local_reconnects");
        status_.localError = e.text;
        milliseconds delay = localBackoff_->next();
        log.warn("local broker connection: " + e.text + "; retrying in " +
                 std::to_string(delay.count()) + " ms");
        localTimer_ = ctx_.after(delay, [this] { connectLocal(); });
        break;
      }
      case Event::Kind::kWarning:
        log.warn("local broker: " + e.text);
        status_.localError = e.text;
        break;
      case Event::Kind::kMessage:
      case Event::Kind::kPublished:
        break;  // local messages are queued apart; local publish acks are not tracked
    }
    return;
  }

  // Cloud. Messages from an old attempt are still real messages (the broker delivered them), so
  // they are not filtered by attempt; everything else is.
  if (e.kind == Event::Kind::kMessage) {
    deliverIn(e.message);
    return;
  }
  if (e.attempt != cloudAttempt_) return;
  switch (e.kind) {
    case Event::Kind::kUp:
      cloudUp_ = true;
      ctx_.count("cloud_connects");
      status_.state = CloudState::kConnected;
      status_.lastError.clear();
      cloudBackoff_->reset();
      inflight_.clear();
      // Everything still in the outbox is unacknowledged: resend from the oldest, in order.
      cursor_ = outbox_->oldestSeq().value_or(outbox_->nextSeq());
      log.info("connected to " + status_.endpoint + (e.sessionPresent ? " (session resumed)" : "") +
               "; " + std::to_string(outbox_->depth()) + " messages to send");
      break;
    case Event::Kind::kDown: {
      bool wasUp = cloudUp_;
      cloudUp_ = false;
      if (wasUp) ctx_.count("cloud_disconnects");
      inflight_.clear();
      status_.state = CloudState::kBackingOff;
      status_.lastError = e.text;
      milliseconds delay = cloudBackoff_->next();
      status_.retryDelayMs = delay.count();
      std::string msg =
          std::string(wasUp ? "lost the cloud connection: " : "cloud connection failed: ") +
          e.text + "; retrying in " + std::to_string(delay.count()) + " ms (" +
          std::to_string(outbox_->depth()) + " messages waiting)";
      // Every attempt is logged, but repeated failures (a long outage) only at debug level.
      if (wasUp || cloudBackoff_->failures() <= 3) {
        log.warn(msg);
      } else {
        log.debug(msg);
      }
      cloudTimer_ = ctx_.after(delay, [this] { connectCloud(); });
      break;
    }
    case Event::Kind::kPublished: {
      auto it = inflight_.find(e.mid);
      if (it == inflight_.end()) break;
      uint64_t seq = it->second;
      inflight_.erase(it);
      acked.push_back(seq);
      if (e.reasonCode >= 0x80) {
        ++status_.rejected;
        ctx_.count("rejected");
        std::string m = "the cloud broker refused message " +
                        messageId(outbox_->instanceId(), seq) + ": reason " +
                        std::to_string(e.reasonCode) + " (removed from the outbox)";
        log.warn(m);
        status_.lastError = m;
      } else {
        ++status_.forwarded;
        ctx_.count("forwarded");
      }
      break;
    }
    case Event::Kind::kWarning:
      log.warn("cloud broker: " + e.text);
      status_.lastError = e.text;
      break;
    case Event::Kind::kMessage:
      break;
  }
}

void CloudBridgePlugin::commit(std::deque<LinkMessage> locals, const std::vector<uint64_t>& acked,
                               uint64_t lostBeforeOutbox) {
  std::vector<OutboxMessage> append;
  append.reserve(locals.size());
  int64_t now = ctx_.clock().nowMs();
  for (LinkMessage& m : locals) {
    if (!mayBridgeOut(m.userProperties)) continue;  // delivered in by a bridge: no loop
    auto route = rules_.routeOut(m.topic);
    if (!route || !isRoutingDelivery(route->rule, m.subscriptionIds)) continue;
    append.push_back({std::move(route->topic), std::move(m.payload), route->qos, m.retain, now});
  }
  if (append.empty() && acked.empty() && lostBeforeOutbox == 0 && heldRetained_.empty()) return;
  // Retained state held back while the disk was full goes first: it is older than this batch.
  if (!heldRetained_.empty()) {
    std::vector<OutboxMessage> held;
    held.reserve(heldRetained_.size() + append.size());
    for (auto& [topic, m] : heldRetained_) held.push_back(m);
    for (auto& m : append) held.push_back(std::move(m));
    append = std::move(held);
  }
  size_t count = append.size();
  // Copies of the retained messages (few: state topics), kept should the disk be full.
  std::vector<OutboxMessage> retainedCopies;
  for (const OutboxMessage& m : append) {
    if (m.retain) retainedCopies.push_back(m);
  }
  auto r = outbox_->commit(std::move(append), acked, lostBeforeOutbox);
  if (!r && r.status().code() == ErrorCode::kStorageFull) {
    holdWhileFull(std::move(retainedCopies), count - retainedCopies.size(), acked, lostBeforeOutbox,
                  r.status());
    return;
  }
  if (r && storageFull_) {
    storageFull_ = false;
    status_.storageFull = false;
    ctx_.logger().info("outbox writable again: " + std::to_string(heldRetained_.size()) +
                       " retained messages kept while the disk was full are queued, " +
                       std::to_string(droppedWhileFull_) + " other messages were dropped");
    droppedWhileFull_ = 0;
  }
  if (r) heldRetained_.clear();
  if (!r) {
    // The local broker already has our PUBACK for these: they are lost, and we say so.
    unstored_ += count + lostBeforeOutbox;
    ctx_.count("dropped_commit_failed", static_cast<int64_t>(count + lostBeforeOutbox));
    ctx_.logger().error("outbox commit failed, " + std::to_string(count) +
                        " local messages lost: " + r.status().toString());
    status_.lastError = "outbox: " + r.status().message();
    return;
  }
  // The outbox counts the messages lost before it (the I/O threads' queue bound) with its own.
  if (lostBeforeOutbox > 0)
    ctx_.count("dropped_queue_full", static_cast<int64_t>(lostBeforeOutbox));
  if (r.value().dropped > lostBeforeOutbox) {
    ctx_.count("dropped_outbox_full", static_cast<int64_t>(r.value().dropped - lostBeforeOutbox));
  }
  if (r.value().dropped > 0) {
    noteDropped(r.value().dropped, r.value().firstDroppedSeq, r.value().lastDroppedSeq);
  }
}

// The disk under the outbox is full: the outbox cannot grow, so new messages are dropped and
// counted, except retained ones, which are state: the latest per topic is held in memory (up to
// kMaxHeldRetained topics) and queued once the disk has room. Said once per episode.
void CloudBridgePlugin::holdWhileFull(std::vector<OutboxMessage> retained, size_t others,
                                      const std::vector<uint64_t>& acked, uint64_t lost,
                                      const Status& error) {
  uint64_t dropped = lost + others;
  for (OutboxMessage& m : retained) {
    if (m.retain && (heldRetained_.count(m.topic) || heldRetained_.size() < kMaxHeldRetained)) {
      heldRetained_[m.topic] = std::move(m);
    } else {
      ++dropped;
    }
  }
  unstored_ += dropped;
  droppedWhileFull_ += dropped;
  if (dropped > 0) ctx_.count("dropped_storage_full", static_cast<int64_t>(dropped));
  // Still in the outbox: removed by the first commit that succeeds (resent meanwhile if the
  // connection drops, as any unremoved record is).
  pendingAcks_.insert(pendingAcks_.end(), acked.begin(), acked.end());
  // Held state must not wait for the next message: look again in a while.
  if (!heldRetained_.empty() && !fullRetryTimer_.armed()) {
    fullRetryTimer_ = ctx_.after(kFullRetry, [this] {
      std::vector<uint64_t> acks;
      acks.swap(pendingAcks_);
      commit({}, acks, 0);
      pump();
      updateStatus();
    });
  }
  if (!storageFull_) {
    storageFull_ = true;
    status_.storageFull = true;
    ctx_.logger().error("the outbox cannot grow: " + error.message() +
                        ". New messages are dropped and counted (retained ones: the latest per "
                        "topic is kept in memory) until there is space; this is logged once.");
  }
}

void CloudBridgePlugin::deliverIn(LinkMessage& m) {
  if (!mayBridgeIn(m.userProperties, outbox_->instanceId())) return;  // our own, come back
  auto route = rules_.routeIn(m.topic);
  if (!route || !isRoutingDelivery(route->rule, m.subscriptionIds)) return;
  PublishResult r = PublishResult::kNotConnected;
  std::string error = "the local broker is not connected";
  if (localUp_) {
    r = local_->publish(localAttempt_, route->topic, m.payload, route->qos, m.retain,
                        {{kOriginProperty, "cloud"}}, nullptr, &error);
  }
  if (r == PublishResult::kOk) {
    ++status_.deliveredIn;
    ctx_.count("delivered_in");
    return;
  }
  ++status_.inDropped;
  ctx_.count("in_dropped");
  // One line per power of two, so an outage of the local broker cannot flood the log.
  if ((status_.inDropped & (status_.inDropped - 1)) == 0) {
    ctx_.logger().warn("could not deliver a cloud message to " + route->topic + ": " + error +
                       " (" + std::to_string(status_.inDropped) + " so far)");
  }
}

void CloudBridgePlugin::connectCloud() {
  status_.state = CloudState::kConnecting;
  ++status_.attempts;
  ctx_.count("cloud_attempts");
  cloudAttempt_ = cloud_->connect();
  updateStatus();
}

void CloudBridgePlugin::connectLocal() { localAttempt_ = local_->connect(); }

void CloudBridgePlugin::pump() {
  if (!cloudUp_) return;
  std::vector<uint64_t> refused;
  bool linkGone = false;
  while (!linkGone && inflight_.size() < settings_.inflight) {
    std::vector<uint64_t> corrupt;
    auto records = outbox_->read(cursor_, settings_.inflight - inflight_.size(), &corrupt);
    if (!records) {
      ctx_.logger().error("outbox read failed: " + records.status().toString());
      status_.lastError = "outbox: " + records.status().message();
      break;
    }
    if (!corrupt.empty()) {
      ctx_.count("dropped_damaged", static_cast<int64_t>(corrupt.size()));
      ctx_.logger().error(std::to_string(corrupt.size()) +
                          " damaged outbox records dropped (from seq " +
                          std::to_string(corrupt.front()) + ")");
      cursor_ = std::max(cursor_, corrupt.back() + 1);
    }
    if (records.value().empty()) break;
    for (const OutboxRecord& rec : records.value()) {
      UserProperties props;
      if (settings_.cloud.mqtt5)
        props.emplace_back(kIdProperty, messageId(outbox_->instanceId(), rec.seq));
      int mid = 0;
      std::string error;
      PublishResult r = cloud_->publish(cloudAttempt_, rec.message.topic, rec.message.payload,
                                        rec.message.qos, rec.message.retain, props, &mid, &error);
      if (r == PublishResult::kNotConnected) {
        linkGone = true;  // its onLinkDown follows; the next connection resends from the oldest
        break;
      }
      cursor_ = rec.seq + 1;
      if (r == PublishResult::kRefused) {
        ++status_.rejected;
        ctx_.count("rejected");
        std::string m = "cannot publish message " + messageId(outbox_->instanceId(), rec.seq) +
                        " to " + rec.message.topic + ": " + error + " (removed from the outbox)";
        ctx_.logger().warn(m);
        status_.lastError = m;
        refused.push_back(rec.seq);
        continue;
      }
      inflight_[mid] = rec.seq;
    }
  }
  if (!refused.empty()) commit({}, refused, 0);
}

void CloudBridgePlugin::noteDropped(uint64_t n, uint64_t firstSeq, uint64_t lastSeq) {
  if (dropsToLog_ == 0) dropsFirstSeq_ = firstSeq;
  dropsLastSeq_ = std::max(dropsLastSeq_, lastSeq);
  dropsToLog_ += n;
  auto now = ctx_.clock().steadyNow();
  if (now - lastDropLog_ >= kDropLogInterval) {
    logDrops();
    return;
  }
  if (!dropLogTimer_.armed()) {
    auto wait = std::chrono::duration_cast<milliseconds>(lastDropLog_ + kDropLogInterval - now);
    dropLogTimer_ = ctx_.after(wait, [this] {
      logDrops();
    });
  }
}

void CloudBridgePlugin::logDrops() {
  if (dropsToLog_ == 0) return;
  const OutboxLimits& l = settings_.limits;
  std::string range =
      dropsLastSeq_ >= dropsFirstSeq_ && dropsLastSeq_ > 0
          ? " (seq " + std::to_string(dropsFirstSeq_) + ".." + std::to_string(dropsLastSeq_) + ")"
          : "";
  ctx_.logger().warn("outbox over its bound (max_messages " + std::to_string(l.maxMessages) +
                     ", max_bytes " + std::to_string(l.maxBytes) + "): dropped " +
                     std::to_string(dropsToLog_) + " oldest messages" + range + ", " +
                     std::to_string(outbox_->droppedTotal()) + " dropped in total");
  dropsToLog_ = 0;
  dropsFirstSeq_ = dropsLastSeq_ = 0;
  lastDropLog_ = ctx_.clock().steadyNow();
}

void CloudBridgePlugin::updateStatus() {
  status_.outbox = outbox_->depth();
  status_.outboxBytes = outbox_->bytes();
  status_.dropped = outbox_->droppedTotal() + unstored_;
  std::string json = status_.toJson();
  PluginState state = status_.pluginState();
  if (json == lastStatusJson_ && state == lastState_) return;
  auto now = ctx_.clock().steadyNow();
  if (now - lastStatusAt_ < kStatusInterval && state == lastState_) {
    if (!statusTimer_.armed()) {
      auto wait = std::chrono::duration_cast<milliseconds>(lastStatusAt_ + kStatusInterval - now);
      statusTimer_ = ctx_.after(wait, [this] {
        updateStatus();
      });
    }
    return;
  }
  lastStatusAt_ = now;
  lastStatusJson_ = json;
  lastState_ = state;
  ctx_.setState(state, json);
}

namespace {

const hearth_config_key kKeys[] = {
    {"host", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "Cloud broker host name; with TLS it must match the broker's certificate. Required."},
    {"port", HEARTH_CFG_INT, "8883", 1, 65535, "Cloud broker port (8883 = MQTT over TLS)."},
    {"protocol", HEARTH_CFG_STRING, "mqtt5", 1, 0,
     "mqtt5, or mqtt311 for brokers without MQTT 5 (no message ids, rules must not overlap)."},
    {"client_id", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "MQTT client id at the cloud broker; empty = hearth-<outbox instance id>. Keep it stable: "
     "the persistent session is tied to it."},
    {"username", HEARTH_CFG_STRING, "\"\"", 1, 0, "Cloud broker user name; empty = none."},
    {"password_file", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "File whose first line is the cloud broker password (mode 0600); empty = none."},
    {"tls", HEARTH_CFG_BOOL, "true", 1, 0, "Use TLS (server certificate always verified)."},
    {"ca_file", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "PEM CA bundle that signed the broker's certificate; empty = the system CA store."},
    {"cert_file", HEARTH_CFG_STRING, "\"\"", 1, 0, "PEM client certificate (with key_file)."},
    {"key_file", HEARTH_CFG_STRING, "\"\"", 1, 0, "PEM client private key (with cert_file)."},
    {"alpn", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "TLS ALPN protocol, e.g. x-amzn-mqtt-ca for AWS IoT Core on port 443; empty = none."},
    {"keepalive", HEARTH_CFG_DURATION, "30s", 5, 65535, "MQTT keepalive."},
    {"session_expiry", HEARTH_CFG_DURATION, "1d", 0, 4294967295.0,
     "How long the cloud broker keeps our session (subscriptions, queued `in` messages) while "
     "we are away; 0 = a clean session on every connect."},
    {"connect_timeout", HEARTH_CFG_DURATION, "15s", 1, 600,
     "An attempt without CONNACK after this long is given up."},
    {"reconnect_min", HEARTH_CFG_DURATION, "1s", 0.1, 3600,
     "First reconnect delay; doubles per failure up to reconnect_max, with jitter."},
    {"reconnect_max", HEARTH_CFG_DURATION, "2m", 1, 86400, "Longest reconnect delay."},
    {"inflight", HEARTH_CFG_INT, "256", 1, 65535,
     "Messages sent to the cloud but not yet acknowledged, at most."},
    {"max_messages", HEARTH_CFG_INT, "100000", 1, 1e9,
     "Outbox bound in messages; beyond it the oldest are dropped (counted, logged)."},
    {"max_bytes", HEARTH_CFG_INT, "67108864", 1024, 1e12,
     "Outbox bound in bytes (topic + payload + 13 bytes per message); beyond it the oldest are "
     "dropped."},
    {"rules", HEARTH_CFG_JSON, "[]", 1, 0,
     "List of {direction: out|in, local: FILTER, remote: FILTER, qos: 0|1|2}; the fixed prefix "
     "of the filter is rewritten, the wildcard tail kept."},
    {"local_host", HEARTH_CFG_STRING, "127.0.0.1", 1, 0, "The local broker."},
    {"local_port", HEARTH_CFG_INT, "1883", 1, 65535, "The local broker's port."},
    {"local_username", HEARTH_CFG_STRING, "hearthd", 1, 0,
     "Local broker account; must subscribe to the out rules and publish to the in rules "
     "(hearthd's own account may, under hearth/#)."},
    {"local_password_file", HEARTH_CFG_STRING, "/etc/hearth/broker.pass", 1, 0,
     "File whose first line is the local account's password; empty = none."},
};

}  // namespace

}  // namespace hearth::cloud_bridge

HEARTH_PLUGIN(hearth::cloud_bridge::CloudBridgePlugin, "cloud_bridge", "1.0.0",
              hearth::cloud_bridge::kKeys,
              sizeof(hearth::cloud_bridge::kKeys) / sizeof(hearth::cloud_bridge::kKeys[0]))
