"""A test "Home Assistant": an MQTT client that does what HA's MQTT integration does, and a
checker of discovery payloads written from HA's MQTT discovery documentation
(https://www.home-assistant.io/integrations/mqtt/#discovery-messages, "Device discovery
payload", and the abbreviation tables of homeassistant/components/mqtt/abbreviations.py).

    ha = FakeHomeAssistant(port, "homeassistant", password).connect()   # birth: online
    cfg = ha.wait_config("hearth_lamp-1")       # parsed, already checked
    ha.command("hearth/v1/ha/hearth_lamp-1/light/set", {"state": "ON"})
"""

import json
import threading
import time
import uuid

import paho.mqtt.client as mqtt

# Abbreviations HA expands in discovery payloads (a subset: the ones relevant to the platforms
# hearth uses; anything else in a payload is reported by the checker).
ABBREVIATIONS = {
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "bri_scl": "brightness_scale",
    "cmd_t": "command_topic", "cmd_tpl": "command_template", "cmps": "components",
    "dev": "device", "dev_cla": "device_class", "en": "enabled_by_default",
    "ent_cat": "entity_category", "exp_aft": "expire_after", "ic": "icon", "name": "name",
    "o": "origin", "obj_id": "object_id", "opt": "optimistic", "p": "platform",
    "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
    "pl_lock": "payload_lock", "pl_unlk": "payload_unlock", "pl_off": "payload_off",
    "pl_on": "payload_on", "pl_prs": "payload_press", "qos": "qos", "ret": "retain", "schema": "schema",
    "stat_cla": "state_class", "stat_locked": "state_locked", "stat_unlocked": "state_unlocked",
    "stat_off": "state_off", "stat_on": "state_on", "stat_t": "state_topic",
    "sup_clrm": "supported_color_modes", "t": "topic", "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {
    "cns": "connections", "cu": "configuration_url", "ids": "identifiers", "name": "name",
    "mf": "manufacturer", "mdl": "model", "mdl_id": "model_id", "hw": "hw_version",
    "sw": "sw_version", "sa": "suggested_area", "sn": "serial_number",
    "via_device": "via_device",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}

# Options shared by every entity, and the options of each platform (full names).
COMMON = {"platform", "unique_id", "name", "availability", "availability_mode",
          "availability_topic", "availability_template", "device", "origin", "qos",
          "enabled_by_default", "entity_category", "icon", "object_id", "encoding",
          "json_attributes_topic", "json_attributes_template", "default_entity_id"}
PLATFORM_OPTIONS = {
    "light": {"schema", "command_topic", "state_topic", "supported_color_modes",
              "brightness_scale", "optimistic", "retain", "effect", "effect_list",
              "flash_time_long", "flash_time_short", "max_mireds", "min_mireds",
              "transition"},
    "switch": {"command_topic", "state_topic", "value_template", "payload_on", "payload_off",
               "state_on", "state_off", "optimistic", "retain", "device_class",
               "command_template"},
    "lock": {"command_topic", "state_topic", "value_template", "payload_lock",
             "payload_unlock", "state_locked", "state_unlocked", "optimistic", "retain",
             "command_template", "code_format"},
    "binary_sensor": {"state_topic", "value_template", "payload_on", "payload_off",
                      "device_class", "expire_after", "force_update", "off_delay"},
    "sensor": {"state_topic", "value_template", "device_class", "unit_of_measurement",
               "state_class", "expire_after", "force_update", "suggested_display_precision"},
    "button": {"command_topic", "payload_press", "device_class", "retain",
               "command_template"},
}
# Light color modes HA accepts in supported_color_modes (onoff/brightness stand alone).
COLOR_MODES = {"onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"}
SENSOR_UNITS = {"temperature": {"°C", "°F", "K"}, "humidity": {"%"}, "battery": {"%"},
                "illuminance": {"lx"}, "pressure": {"hPa", "Pa", "kPa", "mbar"},
                "carbon_dioxide": {"ppm"}, "power": {"W", "kW"}, "voltage": {"V", "mV"},
                "energy": {"kWh", "Wh", "MWh"}}
ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def expand(obj, table, where, problems):
    out = {}
    for k, v in obj.items():
        full = table.get(k)
        if full is None and k in table.values():
            full = k
        if full is None:
            problems.append("%s: unknown key %r" % (where, k))
            continue
        if full in out:
            problems.append("%s: %r given twice (abbreviated and in full)" % (where, full))
        out[full] = v
    return out


def check_device_discovery(topic, payload, prefix="homeassistant"):
    """Returns the list of problems of one device-based discovery message (empty = valid)."""
    problems = []
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != prefix or parts[1] != "device" or parts[3] != "config":
        problems.append("topic %s is not %s/device/<object_id>/config" % (topic, prefix))
    elif not parts[2] or set(parts[2]) - ID_CHARS:
        problems.append("object id %r has characters outside [a-zA-Z0-9_-]" % parts[2])
    try:
        raw = json.loads(payload)
    except ValueError as e:
        return ["not JSON: %s" % e]
    if not isinstance(raw, dict):
        return ["not a JSON object"]
    root = expand(raw, ABBREVIATIONS, "root", problems)
    for required in ("device", "origin", "components"):
        if required not in root:
            problems.append("device discovery needs %r" % required)
    dev = expand(root.get("device", {}), DEVICE_ABBREVIATIONS, "dev", problems)
    if not dev.get("identifiers") and not dev.get("connections"):
        problems.append("dev needs identifiers or connections")
    if not isinstance(dev.get("identifiers", []), list):
        problems.append("dev.identifiers must be a list")
    origin = expand(root.get("origin", {}), ORIGIN_ABBREVIATIONS, "o", problems)
    if not origin.get("name"):
        problems.append("o.name is required")
    avty = root.get("availability")
    if avty is not None:
        if not isinstance(avty, list) or not avty:
            problems.append("avty must be a non-empty list")
        for i, a in enumerate(avty or []):
            a = expand(a, ABBREVIATIONS, "avty[%d]" % i, problems)
            if not a.get("topic"):
                problems.append("avty[%d] needs a topic" % i)
            extra = set(a) - {"topic", "payload_available", "payload_not_available",
                              "value_template"}
            if extra:
                problems.append("avty[%d]: %s" % (i, sorted(extra)))
    if root.get("availability_mode", "latest") not in ("all", "any", "latest"):
        problems.append("avty_mode must be all, any or latest")
    if "availability" in root and "availability_topic" in root:
        problems.append("avty and avty_t are exclusive")
    shared = set(root) - {"device", "origin", "components"}
    cmps = root.get("components", {})
    if not isinstance(cmps, dict) or not cmps:
        problems.append("cmps must be a non-empty object")
        cmps = {}
    uids = set()
    for key, comp in cmps.items():
        where = "cmps.%s" % key
        c = expand(comp, ABBREVIATIONS, where, problems)
        platform = c.get("platform")
        if platform not in PLATFORM_OPTIONS:
            problems.append("%s: platform %r is not one hearth may use" % (where, platform))
            continue
        if not c.get("unique_id"):
            problems.append("%s: device discovery needs unique_id" % where)
        elif c["unique_id"] in uids:
            problems.append("%s: unique_id %s repeated" % (where, c["unique_id"]))
        uids.add(c.get("unique_id"))
        unknown = set(c) - COMMON - PLATFORM_OPTIONS[platform]
        if unknown:
            problems.append("%s: options %s are not %s options" % (where, sorted(unknown), platform))
        if platform in ("light", "switch", "lock", "button") and not c.get("command_topic"):
            problems.append("%s: %s needs command_topic" % (where, platform))
        if platform == "light":
            if c.get("schema") != "json":
                problems.append("%s: hearth lights use schema json" % where)
            modes = c.get("supported_color_modes")
            if not isinstance(modes, list) or not modes or set(modes) - COLOR_MODES:
                problems.append("%s: supported_color_modes %r" % (where, modes))
            elif ("onoff" in modes or "brightness" in modes) and len(modes) > 1:
                problems.append("%s: onoff/brightness must be the only color mode" % where)
            for removed in ("color_mode", "brightness", "color_temp", "hs", "xy", "rgb"):
                if removed in comp or removed in c:
                    problems.append("%s: %r was removed from the JSON schema" % (where, removed))
        if platform in ("sensor", "binary_sensor"):
            if not c.get("state_topic"):
                problems.append("%s: %s needs state_topic" % (where, platform))
            exp = c.get("expire_after")
            if exp is not None and (not isinstance(exp, int) or exp <= 0):
                problems.append("%s: expire_after must be a positive number of seconds" % where)
        if platform == "sensor" and c.get("device_class") in SENSOR_UNITS:
            if c.get("unit_of_measurement") not in SENSOR_UNITS[c["device_class"]]:
                problems.append("%s: unit %r for %s" % (where, c.get("unit_of_measurement"),
                                                        c["device_class"]))
        if "expire_after" in c and platform not in ("sensor", "binary_sensor"):
            problems.append("%s: expire_after is for sensors" % where)
    del shared
    return problems


class FakeHomeAssistant:
    """HA's MQTT integration, as far as the broker can tell: birth and Will on
    homeassistant/status, a subscription to the discovery prefix, and to the topics the
    discovered entities name."""

    def __init__(self, port, username, password, prefix="homeassistant",
                 extra_topics=("hearth/v1/ha/#", "hearth/v1/hub/status")):
        self.port = port
        self.prefix = prefix
        self.configs = {}        # object id -> parsed payload (latest; removed when cleared)
        self.config_log = []     # (time, object id, raw payload) of every config message
        self.cleared = []        # object ids whose config was cleared (empty payload)
        self.problems = {}       # object id -> checker problems
        self.messages = []       # (topic, payload, retain) of everything else
        self.arrivals = []       # (time, topic) of everything else
        self.published_refused = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.extra_topics = list(extra_topics)
        c = mqtt.Client(client_id="ha-" + uuid.uuid4().hex[:8], protocol=mqtt.MQTTv5)
        c.username_pw_set(username, password)
        c.will_set(prefix + "/status", "offline", qos=1, retain=False)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a, **k: self._subscribed.set()
        self.client = c
        self.rc = None

    def connect(self, timeout=10, birth=True):
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError("fake Home Assistant did not connect")
        if self.rc != 0:
            raise AssertionError("fake Home Assistant refused: %s" % self.rc)
        if not self._subscribed.wait(timeout):
            raise AssertionError("fake Home Assistant not subscribed")
        if birth:
            self.birth()
        return self

    def birth(self):
        self.client.publish(self.prefix + "/status", "online", qos=1).wait_for_publish()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.rc = rc.value if hasattr(rc, "value") else rc
        if self.rc == 0:
            client.subscribe([(self.prefix + "/#", 1)] + [(t, 1) for t in self.extra_topics])
        self._connected.set()

    def _on_message(self, client, userdata, msg):
        with self._cond:
            parts = msg.topic.split("/")
            if len(parts) == 4 and parts[0] == self.prefix and parts[1] == "device" \
                    and parts[3] == "config":
                node = parts[2]
                raw = msg.payload.decode("utf-8", "replace")
                self.config_log.append((time.monotonic(), node, raw))
                if not raw:
                    self.configs.pop(node, None)
                    self.cleared.append(node)
                else:
                    problems = check_device_discovery(msg.topic, raw, self.prefix)
                    if problems:
                        self.problems[node] = problems
                    try:
                        self.configs[node] = json.loads(raw)
                    except ValueError:
                        pass
            else:
                self.messages.append((msg.topic, msg.payload.decode("utf-8", "replace"),
                                      bool(msg.retain)))
                self.arrivals.append((time.monotonic(), msg.topic))
            self._cond.notify_all()

    def wait(self, predicate, timeout=15, what="condition"):
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError("Home Assistant: timed out waiting for %s" % what)

    def wait_config(self, node, timeout=15):
        self.wait(lambda: node in self.configs, timeout, "the config of %s" % node)
        with self._cond:
            if node in self.problems:
                raise AssertionError("config of %s breaks HA's discovery rules: %s" %
                                     (node, self.problems[node]))
            return self.configs[node]

    def wait_cleared(self, node, timeout=15):
        self.wait(lambda: node in self.cleared and node not in self.configs, timeout,
                  "the config of %s to be cleared" % node)

    def last(self, topic):
        with self._cond:
            for t, p, _ in reversed(self.messages):
                if t == topic:
                    return p
        return None

    def count(self, topic):
        with self._cond:
            return sum(1 for t, _, _ in self.messages if t == topic)

    def wait_message(self, topic, predicate=lambda p: True, timeout=15, after=0):
        def found():
            seen = [p for t, p, _ in self.messages if t == topic]
            return any(predicate(p) for p in seen[after:])
        self.wait(found, timeout, "a message on %s" % topic)
        return self.last(topic)

    def command(self, topic, payload):
        if not isinstance(payload, str):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish()
        return info
