// The wifi_lan module's entry point; the plugin itself is in the hearth_wifi_lan library.

#include "hearth/plugin.h"
#include "wifi_lan_plugin.h"

HEARTH_PLUGIN(hearth::wifi_lan::WifiLanPlugin, "wifi_lan", "1.0.0",
              hearth::wifi_lan::WifiLanPlugin::configKeys(),
              hearth::wifi_lan::WifiLanPlugin::configKeyCount())
