"""The plugin boundary with a real hearthd (SPEC §11, docs/plugin-sdk.md):

- a plugin that throws from a timer, from posted work or from a handler is marked failed and
  stopped, the log names the plugin and the call, and the hub and its other plugins serve on;
- a SIGHUP with a subtree the plugin's validate refuses keeps the old configuration and the
  plugin running; --check-config refuses the same file (exit 1, naming the key);
- --check-config refuses what the shipped plugins used to accept and then refuse at start: a ble
  product rule with an unquoted hex command, a cloud_bridge remote filter x/#/y, mqtt311 with
  overlapping rules, web cert_file without key_file;
- PATH and ENUM keys: a relative path is resolved against the config file's directory;
- examples/plugin-hello, built the way an outsider builds it (`cmake --install` of the SDK into
  a temp prefix, then find_package(hearth)), is loaded and answers, and its counter shows in
  hub/status and, through the web plugin, on /metrics as hearth_plugin_counter.
"""

import os
import signal
import subprocess
import tempfile
import unittest

from harness import BUILD_DIR, HEARTHD, SOURCE_DIR, Hub, wait_for


class ThrowingPluginTest(unittest.TestCase):
    def test_a_throw_fails_that_plugin_only_and_the_hub_serves_on(self):
        for method, call in (("throwInTimer", "timer"), ("throwInPost", "posted work"),
                             ("throwInHandler", "handler of throwInHandler")):
            with self.subTest(method=method), \
                    Hub(plugins=["echo_plugin", "guarded_plugin"]) as hub:
                hub.add_user("alice")
                t = hub.terminal("alice", "phone")
                self.assertEqual(t.call("guardedWord")["word"], "ok")
                res = t.request(method)
                if method == "throwInHandler":
                    self.assertEqual(res["error"]["code"], "INTERNAL")
                wait_for(lambda: hub.status()["plugins"]["guarded"] == "failed",
                         what="guarded marked failed")
                status = hub.status()
                error = status["details"]["guarded"]["error"]
                self.assertIn("threw in " + call, error)
                self.assertIn("on purpose", error)
                # The hub and the other plugin serve on; the failed plugin's methods are gone.
                self.assertEqual(status["plugins"]["echo"], "running")
                self.assertEqual(t.call("echo", {})["greeting"], "hello")
                self.assertEqual(t.request("guardedWord")["error"]["code"], "UNKNOWN_METHOD")
                log = hub.log_text()
                self.assertIn("plugin guarded", log)
                self.assertIn("threw in " + call, log)
                self.assertIn("guarded stopped", log)  # stop() ran
                self.assertIsNone(hub.proc.poll())


class ValidateTest(unittest.TestCase):
    def test_sighup_with_a_bad_subtree_keeps_the_old_config_and_the_plugin(self):
        with Hub(plugins=["echo_plugin", "guarded_plugin"],
                 plugin_config={"guarded": {"word": "first"}}) as hub:
            hub.add_user("alice")
            t = hub.terminal("alice", "phone")
            self.assertEqual(t.call("guardedWord")["word"], "first")
            good = open(hub.config_path).read()
            bad = good.replace('"word": "first"', '"word": "x#y"')
            self.assertNotEqual(good, bad)
            with open(hub.config_path, "w") as f:
                f.write(bad)
            check = subprocess.run([HEARTHD, "--check-config", hub.config_path],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
            self.assertIn("plugins.guarded", check.stdout + check.stderr)
            self.assertIn("letters only", check.stdout + check.stderr)
            hub.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "new configuration rejected" in hub.log_text(),
                     what="the reload to be rejected")
            self.assertIn("letters only", hub.log_text())
            self.assertEqual(hub.status()["plugins"]["guarded"], "running")
            self.assertEqual(t.call("guardedWord")["word"], "first")
            self.assertNotIn("guarded stopped", hub.log_text())  # never stopped
            # A good change is applied (the plugin restarted with it); counters show.
            with open(hub.config_path, "w") as f:
                f.write(good.replace('"word": "first"', '"word": "second"'))
            hub.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: t.call("guardedWord")["word"] == "second", what="the new word")
            counters = hub.status()["details"]["guarded"].get("counters", {})
            self.assertGreaterEqual(counters.get("words", 0), 1)

    def test_path_and_enum_keys(self):
        with Hub(plugins=["guarded_plugin"],
                 plugin_config={"guarded": {"mode": "loud", "file": "sub/x.txt"}}) as hub:
            hub.add_user("alice")
            t = hub.terminal("alice", "phone")
            r = t.call("guardedWord")
            self.assertEqual(r["mode"], "loud")
            self.assertEqual(r["file"], os.path.join(os.path.dirname(hub.config_path), "sub/x.txt"))


SHIPPED_REFUSALS = {
    # An unquoted hex command is a YAML integer, not the hex text the rule needs.
    "ble": ("plugins:\n  ble:\n    products:\n      - {model: acme.lock.v1, service_uuid: fff0, "
            "control: {characteristic: 0000fff1-0000-1000-8000-00805f9b34fb, "
            "commands: {unlock: 01}}}\n", "unlock"),
    "cloud_bridge_filter": ("plugins:\n  cloud_bridge:\n    host: cloud.example\n    rules:\n"
                            "      - {direction: in, remote: 'x/#/y', local: 'hearth/x/#'}\n",
                            "plugins.cloud_bridge.rules"),
    "cloud_bridge_overlap": ("plugins:\n  cloud_bridge:\n    host: cloud.example\n"
                             "    protocol: mqtt311\n    rules:\n"
                             "      - {direction: out, local: 'a/#', remote: 'r/#'}\n"
                             "      - {direction: in, remote: 'r/x/#', local: 'b/#'}\n",
                             "plugins.cloud_bridge.rules"),
    "web": ("plugins:\n  web:\n    cert_file: /etc/ssl/certs/ssl-cert-snakeoil.pem\n",
            "plugins.web"),
}


class ShippedPluginsCheckConfigTest(unittest.TestCase):
    def test_check_config_refuses_what_start_would(self):
        plugin_dirs = os.path.join(os.environ.get("HEARTH_BUILD_DIR", ""), "plugins")
        with tempfile.TemporaryDirectory(prefix="hearth-sdk-") as root:
            for name, (text, key) in SHIPPED_REFUSALS.items():
                with self.subTest(case=name):
                    path = os.path.join(root, name + ".yaml")
                    with open(path, "w") as f:
                        f.write("hub:\n  state_dir: %s\n  plugin_dir: %s\n" % (root, plugin_dirs)
                                + text)
                    check = subprocess.run([HEARTHD, "--check-config", path],
                                           capture_output=True, text=True, timeout=30)
                    out = check.stdout + check.stderr
                    self.assertEqual(check.returncode, 1, out)
                    self.assertIn(key, out)


    def test_check_config_accepts_the_shipped_defaults(self):
        # web's default listen list is ["0.0.0.0", "::"]; POCO 1.11's IPAddress::tryParse
        # refuses "::", which once failed the front door on every packaged install.
        plugin_dirs = os.path.join(os.environ.get("HEARTH_BUILD_DIR", ""), "plugins")
        with tempfile.TemporaryDirectory(prefix="hearth-sdk-") as root:
            path = os.path.join(root, "defaults.yaml")
            with open(path, "w") as f:
                f.write("hub:\n  state_dir: %s\n  plugin_dir: %s\nplugins:\n  web: {}\n"
                        % (root, plugin_dirs))
            check = subprocess.run([HEARTHD, "--check-config", path],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
            with open(path, "w") as f:
                f.write("hub:\n  state_dir: %s\n  plugin_dir: %s\nplugins:\n  web:\n"
                        "    listen: [\"0.0.0.0\", \"::\", \"::1\", \"no-such-address\"]\n"
                        % (root, plugin_dirs))
            check = subprocess.run([HEARTHD, "--check-config", path],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
            self.assertIn("no-such-address", check.stdout + check.stderr)


class OutsidePluginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Built once for both tests, the way an outsider builds it.
        cls.root = tempfile.TemporaryDirectory(prefix="hearth-sdk-")
        prefix = os.path.join(cls.root.name, "prefix")
        cls.build = os.path.join(cls.root.name, "build")
        def run(args):
            r = subprocess.run(args, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                cls.root.cleanup()
                raise AssertionError("%s:\n%s%s" % (args, r.stdout, r.stderr))
        run(["cmake", "--install", BUILD_DIR, "--prefix", prefix, "--component", "dev"])
        cls.installed_api = os.path.exists(os.path.join(prefix, "include/hearth/plugin_api.h"))
        run(["cmake", "-S", os.path.join(SOURCE_DIR, "examples", "plugin-hello"), "-B", cls.build,
             "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_PREFIX_PATH=" + prefix])
        run(["cmake", "--build", cls.build])

    @classmethod
    def tearDownClass(cls):
        cls.root.cleanup()

    def test_example_built_against_the_installed_sdk_loads_and_answers(self):
        self.assertTrue(self.installed_api)
        with Hub(plugins=["hello_sdk"], extra_plugin_dirs=[self.build],
                 plugin_config={"hello_sdk": {"tone": "dry"}}) as hub:
            hub.add_user("alice")
            t = hub.terminal("alice", "phone")
            self.assertEqual(t.call("sdkHello"),
                             {"greeting": "hello from an outside plugin", "userId": "alice"})
            self.assertEqual(t.call("sdkHelloLater")["userId"], "alice")
            details = hub.status()["details"]["hello_sdk"]
            self.assertEqual(details["counters"]["greetings"], 2)
            self.assertIn("dry tone", hub.log_text())

    def test_its_counter_shows_on_metrics_through_the_web_plugin(self):
        # Issue 16: a plugin's counters appear in hub/status and on /metrics. The outside
        # plugin counts; web reads every plugin's counters through the boundary and serves
        # them (a snapshot taken on its 2 s status timer, so polled here).
        from test_web import WebHub
        sample = 'hearth_plugin_counter{plugin="hello_sdk",name="greetings"}'
        with WebHub(plugins=("web", "hello_sdk"), extra_plugin_dirs=[self.build]) as hub:
            self.assertNotIn(sample, hub.metrics())  # nothing counted yet
            hub.add_user("alice")
            t = hub.terminal("alice", "phone")
            for _ in range(3):
                self.assertEqual(t.call("sdkHello")["userId"], "alice")
            wait_for(lambda: hub.metrics().get(sample) == 3, timeout=15,
                     what="greetings == 3 on /metrics")
            self.assertEqual(hub.status()["details"]["hello_sdk"]["counters"]["greetings"], 3)
            text = hub.metrics_text()
            self.assertEqual(text.count("# HELP hearth_plugin_counter "), 1, text)
            self.assertEqual(text.count("# TYPE hearth_plugin_counter counter\n"), 1, text)
            self.assertIn(sample + " 3\n", text)
            # The front door's own metrics are still there.
            self.assertIn("hearth_web_max_connections", hub.metrics())

if __name__ == "__main__":
    unittest.main()
