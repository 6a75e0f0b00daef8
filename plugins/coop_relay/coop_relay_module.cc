// The module's entry point (the only exported symbol); the plugin itself is in
// hearth_coop_relay.
#include "coop_relay_plugin.h"

HEARTH_PLUGIN(hearth::coop::CoopRelayPlugin, "coop_relay", "1.0.0",
              hearth::coop::CoopRelayPlugin::configKeys(),
              hearth::coop::CoopRelayPlugin::configKeyCount())
