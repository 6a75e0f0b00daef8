// A plugin whose start() fails: reported as failed, and the rest of the hub keeps running.
#include "hearth/plugin.h"

namespace {
class FailStart : public hearth::Plugin {
 public:
  explicit FailStart(hearth::PluginContext&) {}
  hearth::Status start() override {
    return hearth::Status::error(hearth::ErrorCode::kUnavailable, "no hardware for this test");
  }
  void stop() override {}
};
}  // namespace

HEARTH_PLUGIN(FailStart, "failstart", "0.1.0", nullptr, 0)
