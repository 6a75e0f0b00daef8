#pragma once
// cloud_bridge: bridges chosen topics between the local broker and a cloud MQTT broker over TLS,
// store-and-forward when the cloud is unreachable (docs/cloud-bridge.md).
//
// Data flow:
//   local broker --(local link, subscribed to the `out` rules)--> event queue --> hub loop:
//     rewrite topic, append to the durable outbox (one transaction per drained batch) -->
//     publish to the cloud with a bounded in-flight window, in outbox order --> PUBACK -->
//     remove from the outbox (batched into the next transaction).
//   cloud broker --(cloud link, subscribed to the `in` rules)--> event queue --> hub loop:
//     rewrite topic, publish on the local link tagged hearth-origin=cloud.
//
// Threading: the two MqttLinks have their own I/O threads; their callbacks only queue events
// (under eventsMutex_) and post one drain to the hub loop. Everything else, the outbox, the
// in-flight window, the state machine, the status, runs on the hub loop. The drain captures
// `this` as it is: the host drops posted work once the plugin has stopped, and stop() joins
// both I/O threads before any member they use goes.

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridge_status.h"
#include "cloud_outbox.h"
#include "hearth/plugin.h"
#include "hearth/util/backoff.h"
#include "mqtt_link.h"
#include "topic_rules.h"

namespace hearth::cloud_bridge {

class CloudBridgePlugin : public Plugin, private LinkListener {
 public:
  explicit CloudBridgePlugin(PluginContext& ctx);
  ~CloudBridgePlugin() override;

  Status start() override;
  void stop() override;
  // --check-config and SIGHUP: the protocol, the cert_file/key_file pair and the topic rules,
  // by the same code start() uses (files and the host are checked at start).
  static Status validate(const ConfigView& c);

 private:
  struct Settings {
    LinkOptions cloud;
    LinkOptions local;
    std::chrono::milliseconds reconnectMin{1000};
    std::chrono::milliseconds reconnectMax{120000};
    size_t inflight = 256;
    OutboxLimits limits;
    std::string rulesJson;
  };

  // A link event, queued by an I/O thread for the hub loop. Local messages are queued apart
  // (localMessages_): they only ever go to the outbox.
  struct Event {
    enum class Kind { kUp, kDown, kMessage, kPublished, kWarning };
    Kind kind = Kind::kUp;
    LinkSide side = LinkSide::kCloud;
    uint64_t attempt = 0;
    bool sessionPresent = false;
    std::string text;
    LinkMessage message;
    int mid = 0;
    int reasonCode = 0;
  };

  Status readSettings();

  // LinkListener: I/O threads.
  void onLinkUp(LinkSide side, uint64_t attempt, bool sessionPresent) override;
  void onLinkDown(LinkSide side, uint64_t attempt, std::string error) override;
  void onLinkMessage(LinkSide side, uint64_t attempt, LinkMessage message) override;
  void onLinkPublished(LinkSide side, uint64_t attempt, int mid, int reasonCode) override;
  void onLinkWarning(LinkSide side, uint64_t attempt, std::string warning) override;
  void enqueue(Event e);
  void scheduleDrainLocked();

  // Hub loop.
  void drain();
  void handle(Event& e, std::vector<uint64_t>& acked);
  void commit(std::deque<LinkMessage> locals, const std::vector<uint64_t>& acked,
              uint64_t lostBeforeOutbox);
  void holdWhileFull(std::vector<OutboxMessage> retained, size_t others,
                     const std::vector<uint64_t>& acked, uint64_t lost, const Status& error);
  void deliverIn(LinkMessage& m);
  void connectCloud();
  void connectLocal();
  void pump();
  void noteDropped(uint64_t n, uint64_t firstSeq, uint64_t lastSeq);
  void logDrops();
  void updateStatus();

  PluginContext& ctx_;
  Settings settings_;
  TopicRules rules_;
  std::unique_ptr<CloudOutbox> outbox_;
  std::unique_ptr<util::Backoff> cloudBackoff_;
  std::unique_ptr<util::Backoff> localBackoff_;
  std::unique_ptr<MqttLink> cloud_;
  std::unique_ptr<MqttLink> local_;

  // Shared with the I/O threads.
  std::mutex eventsMutex_;
  std::vector<Event> events_;
  std::deque<LinkMessage> localMessages_;
  uint64_t lostBeforeOutbox_ = 0;  // local messages over the queue bound, not yet counted
  bool drainPosted_ = false;

  // Hub loop only.
  bool started_ = false;
  uint64_t cloudAttempt_ = 0;
  uint64_t localAttempt_ = 0;
  bool cloudUp_ = false;
  bool localUp_ = false;
  uint64_t cursor_ = 0;                         // next outbox seq to send
  std::unordered_map<int, uint64_t> inflight_;  // mid -> outbox seq
  std::vector<uint64_t> pendingAcks_;           // acknowledged, not yet removed from the store
  uint64_t unstored_ = 0;  // local messages lost to a failed outbox commit, this run
  BridgeStatus status_;
  // Timers are handles: reassigning one cancels what it held; armed() is false once it fired,
  // so "start one unless one is pending" is `if (!t.armed()) t = ctx_.after(...)`.
  Timer cloudTimer_;
  Timer localTimer_;
  Timer statusTimer_;
  Timer dropLogTimer_;
  Timer ackTimer_;
  Timer trimTimer_;  // re-armed by each burst of local messages (kBurstBatch)
  std::chrono::steady_clock::time_point lastStatusAt_{};
  std::string lastStatusJson_;
  PluginState lastState_ = PluginState::kStarting;
  uint64_t dropsToLog_ = 0;
  uint64_t dropsFirstSeq_ = 0;
  uint64_t dropsLastSeq_ = 0;
  std::chrono::steady_clock::time_point lastDropLog_{};
  // While the state disk is full (an outbox commit answered STORAGE_FULL).
  bool storageFull_ = false;
  std::map<std::string, OutboxMessage> heldRetained_;  // cloud topic -> latest retained message
  uint64_t droppedWhileFull_ = 0;
  Timer fullRetryTimer_;
};

}  // namespace hearth::cloud_bridge
