// The home_assistant module's entry point and its configuration keys (docs/home-assistant.md).

#include "hearth/plugin.h"
#include "home_assistant_plugin.h"

namespace {

const hearth_config_key kKeys[] = {
    {"discovery_prefix", HEARTH_CFG_STRING, "homeassistant", 1, 0,
     "Home Assistant's discovery prefix (its MQTT integration's setting)."},
    {"base_topic", HEARTH_CFG_STRING, "hearth/v1/ha", 1, 0,
     "Where state, availability and command topics of exposed devices live."},
    {"hub_name", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "Name of the hub's own device in Home Assistant; empty = the host name."},
    {"support_url", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "The o.url HA shows for hearth's devices; empty = https://<host name>.local:8443/ (the "
     "household web app on the front door)."},
    {"ha_username", HEARTH_CFG_STRING, "homeassistant", 1, 0,
     "Broker account Home Assistant logs in with (dynsec mode; its password is set with the "
     "admin request haAccount)."},
    {"bridge_username", HEARTH_CFG_STRING, "hearth-ha", 1, 0,
     "The plugin's own broker account in dynsec mode (made at every start, random password)."},
    {"broker_host", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "Home Assistant's broker when it is not hearthd's; empty = hearthd's broker."},
    {"broker_port", HEARTH_CFG_INT, "0", 0, 65535,
     "Port of broker_host; 0 = 1883 (8883 with broker_tls), or hearthd's broker port."},
    {"broker_tls", HEARTH_CFG_BOOL, "false", 1, 0,
     "TLS to the broker (the certificate is verified)."},
    {"broker_ca_file", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "PEM CA file for broker_tls; empty = the system's CA store."},
    {"broker_username", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "Account on broker_host (or on hearthd's broker in external user management)."},
    {"broker_password_file", HEARTH_CFG_STRING, "\"\"", 1, 0,
     "File whose first line is broker_username's password."},
    {"resend_delay_max", HEARTH_CFG_DURATION, "5s", 0, 60,
     "After Home Assistant's birth message, discovery is re-sent after a random delay up to this."},
    {"ble_expire_after", HEARTH_CFG_DURATION, "10m", 0, 86400,
     "expire_after of the sensors of BLE devices (they report by advertising); 0 = none."},
    {"models", HEARTH_CFG_JSON, "[]", 1, 0,
     "Extra mapping rules before the built-in ones: [{model: glob, kind: lamp|plug|lock|"
     "contact|button|sensor, readings: [...], manufacturer: ...}]."},
};

}  // namespace

HEARTH_PLUGIN(hearth::home_assistant::HomeAssistantPlugin, "home_assistant", "1.0.0", kKeys,
              sizeof(kKeys) / sizeof(kKeys[0]))
