// A plugin that needs a function no library provides. Opened RTLD_LAZY it would load and kill
// hearthd at the first call; opened RTLD_NOW it is refused at load, naming the symbol.
#include "hearth/plugin.h"

extern "C" int hearth_test_symbol_nobody_defines(void);

namespace {
class NoSym : public hearth::Plugin {
 public:
  explicit NoSym(hearth::PluginContext&) {}
  hearth::Status start() override {
    return hearth_test_symbol_nobody_defines() == 0
               ? hearth::Status::ok()
               : hearth::Status::error(hearth::ErrorCode::kInternal, "unreachable");
  }
  void stop() override {}
};
}  // namespace

HEARTH_PLUGIN(NoSym, "nosym", "0.1.0", nullptr, 0)
