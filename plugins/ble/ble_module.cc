// The module's entry point (the only exported symbol); the plugin itself is in hearth_ble.
#include "ble_plugin.h"

HEARTH_PLUGIN(hearth::ble::BlePlugin, "ble", "0.1.0", hearth::ble::BlePlugin::configKeys(),
              hearth::ble::BlePlugin::configKeyCount())
