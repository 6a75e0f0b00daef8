// ble: the discovery duty cycle (scan_window on, the rest of scan_interval off).
#include "ble_plugin.h"

#include "ble_shared.h"

namespace hearth::ble {

using namespace detail;

// ------------------------------------------------------------------------------------------
// Discovery duty cycle

void BlePlugin::startScanning() {
  if (scanning_ || adapterPath_.empty()) return;
  scanning_ = true;
  scanOn(++scanGen_);
}

void BlePlugin::stopScanning(bool tellBluez) {
  if (!scanning_) return;
  scanning_ = false;
  ++scanGen_;
  scanTimer_.cancel();
  if (tellBluez && !adapterPath_.empty()) client_->stopDiscovery(adapterPath_, ignoreReply);
}

void BlePlugin::scanOn(uint64_t gen) {
  const std::string adapter = adapterPath_;
  const bool continuous = scanWindow_ >= scanInterval_;
  client_->setDiscoveryFilter(
      adapter, filterUuids_, [this, gen, adapter, continuous](const MaybeError& err) {
        if (gen != scanGen_) return;
        if (err) {
          ctx_.logger().warn("SetDiscoveryFilter failed (" + err->name + ": " + err->message +
                             "); discovering without a filter");
        }
        client_->startDiscovery(adapter, [this, gen, continuous](const MaybeError& err) {
          if (gen != scanGen_) return;
          if (!err || err->name == "org.bluez.Error.InProgress") return;
          ctx_.logger().warn("StartDiscovery failed: " + err->name + ": " + err->message);
          if (continuous) {
            scanTimer_ = ctx_.after(retryInterval_, [this, gen] {
              if (gen == scanGen_) scanOn(gen);
            });
          }
        });
      });
  if (!continuous) {
    scanTimer_ = ctx_.after(scanWindow_, [this, gen] {
      if (gen == scanGen_) scanOff(gen);
    });
  }
}

void BlePlugin::scanOff(uint64_t gen) {
  client_->stopDiscovery(adapterPath_, ignoreReply);
  scanTimer_ = ctx_.after(scanInterval_ - scanWindow_, [this, gen] {
    if (gen == scanGen_) scanOn(gen);
  });
}

}  // namespace hearth::ble
