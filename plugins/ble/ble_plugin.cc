// ble: config keys, construction and lifecycle. The other seams: ble_mirror.cc (the link to
// BlueZ and the mirror of its objects), ble_discovery.cc (the discovery duty cycle),
// ble_reporting.cc (matching, reporting and presence of devices), ble_gatt_jobs.cc (commands:
// the queue, connections, GATT writes and replies).
#include "ble_plugin.h"

#include <utility>

#include "sdbus_bluez_client.h"

#include "ble_shared.h"

namespace hearth::ble {

using namespace detail;

namespace {

const hearth_config_key kConfigKeys[] = {
    {"adapter", HEARTH_CFG_STRING, "auto", 1, 0,
     "BlueZ adapter to use (hci0, hci1, ...); auto = the first one BlueZ reports."},
    {"products", HEARTH_CFG_JSON, "[]", 1, 0,
     "Product rules: a list of {model, service_uuid, manufacturer_id, name_pattern, adv_offset, "
     "default_bind_window, control{characteristic, commands, ...}} (docs/ble.md)."},
    {"scan_window", HEARTH_CFG_DURATION, "10s", 1, 3600, "How long each discovery run lasts."},
    {"scan_interval", HEARTH_CFG_DURATION, "10s", 1, 3600,
     "How often a discovery run starts; scan_window >= scan_interval scans continuously."},
    {"present_within", HEARTH_CFG_DURATION, "30s", 1, 86400,
     "A device counts as present for bindDevice if it advertised (or was connected) this "
     "recently."},
    {"offline_after", HEARTH_CFG_DURATION, "120s", 1, 86400,
     "Silence after which a device is reported offline to its bound users."},
    {"connect_timeout", HEARTH_CFG_DURATION, "15s", 1, 300,
     "Device1.Connect plus GATT service resolution, per command that needs a connection."},
    {"control_timeout", HEARTH_CFG_DURATION, "30s", 1, 600,
     "The whole controlDevice (queueing, connecting, writing, waiting for the reply)."},
    {"max_connections", HEARTH_CFG_INT, "3", 1, 32,
     "Connections the plugin keeps open at once; idle ones are closed least recently used "
     "first."},
    {"connection_idle", HEARTH_CFG_DURATION, "5s", 0, 3600,
     "How long a connection stays open after its last command (0 = close at once)."},
    {"max_queue", HEARTH_CFG_INT, "32", 1, 4096,
     "Commands waiting at once; more are refused with UNAVAILABLE."},
    {"retry_interval", HEARTH_CFG_DURATION, "5s", 1, 600,
     "How often the plugin retries the system bus or BlueZ while waiting for them."},
};

}  // namespace

const hearth_config_key* BlePlugin::configKeys() { return kConfigKeys; }
size_t BlePlugin::configKeyCount() { return sizeof(kConfigKeys) / sizeof(kConfigKeys[0]); }

BlePlugin::BlePlugin(PluginContext& ctx)
    : BlePlugin(ctx,
                std::make_unique<SdbusBluezClient>(
                    [&ctx](std::function<void()> fn) { ctx.post(std::move(fn)); }, ctx.logger())) {}

BlePlugin::BlePlugin(PluginContext& ctx, std::unique_ptr<BluezClient> client)
    : ctx_(ctx),
      client_(std::move(client)),
      adapterName_(ctx.config().getString("adapter")),
      scanWindow_(ctx.config().getDuration("scan_window")),
      scanInterval_(ctx.config().getDuration("scan_interval")),
      presentWithin_(ctx.config().getDuration("present_within")),
      offlineAfter_(ctx.config().getDuration("offline_after")),
      connectTimeout_(ctx.config().getDuration("connect_timeout")),
      controlTimeout_(ctx.config().getDuration("control_timeout")),
      connectionIdle_(ctx.config().getDuration("connection_idle")),
      retryInterval_(ctx.config().getDuration("retry_interval")),
      maxConnections_(static_cast<size_t>(ctx.config().getInt("max_connections"))),
      maxQueue_(static_cast<size_t>(ctx.config().getInt("max_queue"))) {}

BlePlugin::~BlePlugin() {
  stop();
  client_->stop();
}

// ------------------------------------------------------------------------------------------
// Lifecycle

// The adapter name and the product rules, by the code start() uses; --check-config and SIGHUP
// run it before anything is stopped.
Result<std::vector<ProductRule>> BlePlugin::readRules(const ConfigView& c) {
  const std::string adapter = c.getString("adapter");
  if (adapter != "auto" && !validAdapterName(adapter)) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "plugins.ble.adapter: expected auto or an adapter name like hci0");
  }
  auto rules = parseProductRules(c.getJson("products"));
  if (!rules.isOk()) {
    return Status::error(ErrorCode::kInvalidRequest, "plugins.ble." + rules.status().message());
  }
  return rules;
}

Status BlePlugin::validate(const ConfigView& c) { return readRules(c).status(); }

Status BlePlugin::start() {
  auto rules = readRules(ctx_.config());
  if (!rules.isOk()) return rules.status();
  rules_ = std::move(rules).value();
  filterUuids_ = discoveryUuids(rules_);
  if (rules_.empty()) {
    ctx_.logger().warn(
        "no product rules configured (plugins.ble.products): no device will be "
        "reported");
  }
  Status s = loadResetCounters();
  if (!s.isOk()) return s;
  s = ctx_.devices().registerTransport(kTransport, this);
  if (!s.isOk()) return s;
  started_ = true;
  busConnectedBefore_ = false;
  link_ = Link::kNoBluez;
  linkReported_ = false;
  setLink(Link::kNoBluez);  // until the object tree arrives
  armSweep();
  connectBus();
  return Status::ok();
}

void BlePlugin::stop() {
  if (!started_) return;
  started_ = false;
  retryTimer_.cancel();
  scanTimer_.cancel();
  sweepTimer_.cancel();
  resolveTimer_.cancel();
  failAllJobs(ErrorCode::kUnavailable, "the ble plugin is stopping");
  for (const auto& [id, h] : held_) {
    if (busUp_) client_->disconnect(h.path, ignoreReply);
  }
  held_.clear();  // and their idle timers
  stopScanning(busUp_);
  // Pending messages (Disconnect, StopDiscovery) are flushed when the connection closes.
  client_->stop();
  busUp_ = false;
}

}  // namespace hearth::ble
