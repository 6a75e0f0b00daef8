"""An integration test that cannot run is reported skipped, never passed, and under CI it fails
(tests/run_integration.py, registered by tests/CMakeLists.txt with SKIP_RETURN_CODE 77)."""

import os
import re
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(os.path.dirname(HERE), "run_integration.py")
BUILD_DIR = os.environ.get("HEARTH_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))

MODULES = {
    "all_pass": """
import unittest
class T(unittest.TestCase):
    def test_a(self): pass
    def test_b(self): pass
""",
    # The shape of test_wifi_lan.py: the whole class skips without root or a tool.
    "all_skip": """
import unittest
@unittest.skipUnless(False, "hearth-devsim is not built")
class T(unittest.TestCase):
    def test_a(self): pass
    def test_b(self): pass
""",
    "some_skip": """
import unittest
class T(unittest.TestCase):
    def test_runs(self): pass
    @unittest.skip("needs root")
    def test_needs_root(self): pass
""",
    "one_fails": """
import unittest
class T(unittest.TestCase):
    def test_a(self): pass
    @unittest.skip("needs root")
    def test_skipped(self): pass
    def test_fails(self): self.assertEqual(1, 2)
""",
}


class SkipReporting(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hearth-skip-")
        for name, text in MODULES.items():
            with open(os.path.join(cls.tmp.name, name + ".py"), "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_module(self, name, ci=None):
        env = dict(os.environ)
        env.pop("CI", None)
        if ci is not None:
            env["CI"] = ci
        return subprocess.run(["/usr/bin/python3", RUNNER, name], cwd=self.tmp.name, env=env,
                              capture_output=True, text=True, timeout=60)

    def test_all_passing_is_success(self):
        self.assertEqual(self.run_module("all_pass").returncode, 0)
        self.assertEqual(self.run_module("all_pass", ci="true").returncode, 0)

    def test_a_skipped_class_is_reported_skipped_with_its_reason(self):
        r = self.run_module("all_skip")
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertIn("2 of 2 tests skipped (0 ran)", r.stderr)
        self.assertIn("hearth-devsim is not built", r.stderr)

    def test_a_partial_skip_is_not_a_pass(self):
        r = self.run_module("some_skip")
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertIn("1 of 2 tests skipped (1 ran)", r.stderr)
        self.assertIn("needs root", r.stderr)

    def test_under_ci_a_skip_fails(self):
        for name in ("all_skip", "some_skip"):
            r = self.run_module(name, ci="true")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("CI=true and CI must run every test", r.stderr)
        # Any other value of CI is not CI.
        self.assertEqual(self.run_module("all_skip", ci="false").returncode, 77)

    def test_a_failure_wins_over_a_skip(self):
        self.assertEqual(self.run_module("one_fails").returncode, 1)
        self.assertEqual(self.run_module("one_fails", ci="true").returncode, 1)

    def test_ctest_treats_77_as_skipped_for_every_integration_test(self):
        testfile = os.path.join(BUILD_DIR, "tests", "CTestTestfile.cmake")
        with open(testfile) as f:
            text = f.read()
        names = re.findall(r'add_test\((?:\[=\[)?(integration\.test_\w+)', text)
        self.assertIn("integration.test_wifi_lan", names)
        for name in names:
            props = re.search(r'set_tests_properties\((?:\[=\[)?%s(?:\]=\])? PROPERTIES (.*)\)'
                              % re.escape(name), text)
            self.assertIsNotNone(props, name)
            self.assertRegex(props.group(1), r'SKIP_RETURN_CODE "77"', name)
            self.assertIn("run_integration.py", text)


if __name__ == "__main__":
    unittest.main()
