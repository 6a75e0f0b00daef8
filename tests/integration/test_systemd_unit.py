"""The shipped systemd unit: hardened (exposure <= 2.0), valid, and a notify/watchdog service.

Runs the real `systemd-analyze` offline (no systemd as PID 1 needed) against a copy of
systemd/hearth.service in a temporary directory. `verify` insists that ExecStart's binary
exists, so the copy points ExecStart at the built hearthd when there is one, else /bin/true.

Env: HEARTH_SOURCE_DIR (repository root), HEARTH_BUILD_DIR (CMake build dir, optional).
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

SOURCE_DIR = os.environ.get(
    "HEARTH_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("HEARTH_BUILD_DIR", "")
UNIT_PATH = os.path.join(SOURCE_DIR, "systemd", "hearth.service")
UNIT_NAME = "hearth.service"

MAX_EXPOSURE = 2.0
SHIPPED_EXEC_START = "/usr/sbin/hearthd --config /etc/hearth/hearth.yaml"

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
EXPOSURE_LINE = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)")


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    if path is None:
        raise AssertionError("systemd-analyze not found (Debian package 'systemd')")
    return path


def run(args):
    # No tty, so no colours or pager; NO_COLOR/SYSTEMD_PAGER make sure of it anyway.
    env = dict(os.environ, SYSTEMD_PAGER="", SYSTEMD_COLORS="0", NO_COLOR="1",
               SYSTEMD_LOG_COLOR="0")
    proc = subprocess.run([systemd_analyze()] + args, capture_output=True, text=True,
                          env=env, timeout=120)
    proc.stdout = ANSI_ESCAPE.sub("", proc.stdout)
    proc.stderr = ANSI_ESCAPE.sub("", proc.stderr)
    return proc


def parse_unit(text):
    """{section: {key: [values in order]}}. Units may repeat a key (SystemCallFilter=)."""
    sections = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise AssertionError("unparseable unit line: %r" % raw)
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def exposure_of(unit_file):
    """Runs `systemd-analyze security --offline=yes` and returns (score, full output)."""
    proc = run(["security", "--offline=yes", "--no-pager", unit_file])
    output = proc.stdout + proc.stderr
    match = EXPOSURE_LINE.search(output)
    if match is None:
        raise AssertionError("no exposure line in systemd-analyze output (exit %d):\n%s"
                             % (proc.returncode, output))
    if match.group(1) != os.path.basename(unit_file):
        raise AssertionError("exposure reported for %s, expected %s"
                             % (match.group(1), os.path.basename(unit_file)))
    return float(match.group(2)), output


def verify_lines_about_unit(unit_file):
    """Runs `systemd-analyze verify` offline; returns (exit code, lines naming the unit, all)."""
    # --man=no: Documentation=man: pages are not checked (and need man-db);
    # --recursive-errors=no: only this unit, not whatever its dependencies look like on the
    # machine running the test. No --root: the unit is given by path and its After=/Wants=
    # targets resolve against the host's unit directories, as they will when installed.
    proc = run(["verify", "--man=no", "--recursive-errors=no", unit_file])
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    about = [l for l in lines if UNIT_NAME in l or unit_file in l]
    return proc.returncode, about, lines


def executable_for_verify():
    candidate = os.path.join(BUILD_DIR, "core", "hearthd") if BUILD_DIR else ""
    if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return os.path.abspath(candidate)
    return "/bin/true"


class SystemdUnitTest(unittest.TestCase):
    def setUp(self):
        with open(UNIT_PATH, encoding="utf-8") as f:
            self.unit_text = f.read()
        self.unit = parse_unit(self.unit_text)
        self.service = self.unit.get("Service", {})
        tmp = tempfile.TemporaryDirectory(prefix="hearth-unit-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def write_unit(self, text, subdir="unit"):
        directory = os.path.join(self.tmp, subdir)
        os.makedirs(directory)
        path = os.path.join(directory, UNIT_NAME)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def copy_with_exec_start(self, binary, subdir="unit"):
        """The shipped unit with only ExecStart's binary replaced (arguments kept)."""
        self.assertIn("ExecStart=" + SHIPPED_EXEC_START + "\n", self.unit_text)
        text = self.unit_text.replace("ExecStart=/usr/sbin/hearthd ", "ExecStart=%s " % binary)
        return self.write_unit(text, subdir)

    # -- hardening ---------------------------------------------------------------------------

    def test_exposure_is_at_most_two(self):
        score, output = exposure_of(self.copy_with_exec_start(executable_for_verify()))
        print("\nsystemd-analyze security: overall exposure %.1f" % score)
        self.assertLessEqual(score, MAX_EXPOSURE,
                             "hearth.service exposure %.1f > %.1f:\n%s"
                             % (score, MAX_EXPOSURE, output))
        # The same bound through systemd-analyze's own gate (threshold is exposure x 10).
        proc = run(["security", "--offline=yes", "--no-pager",
                    "--threshold=%d" % int(MAX_EXPOSURE * 10),
                    os.path.join(self.tmp, "unit", UNIT_NAME)])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_exposure_parser_reads_the_real_number(self):
        # An unhardened unit must score badly; if parsing silently produced 0 this fails.
        path = self.write_unit("[Service]\nType=notify\nExecStart=/bin/true\n", "bare")
        score, output = exposure_of(path)
        self.assertGreater(score, 5.0, output)

    def test_daemon_needs_are_not_blocked(self):
        families = " ".join(self.service.get("RestrictAddressFamilies", [])).split()
        self.assertFalse(any(f.startswith("~") for f in families), families)
        for family in ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"):
            self.assertIn(family, families)
        # LAN devices, multicast discovery and the cloud broker need the host network.
        self.assertNotIn(self.service.get("PrivateNetwork", ["no"])[-1], ("yes", "true", "1"))
        self.assertNotIn("IPAddressDeny", self.service)
        self.assertEqual(self.service.get("StateDirectory"), ["hearth"])
        self.assertEqual(self.service.get("ConfigurationDirectory"), ["hearth"])
        self.assertNotIn(self.service.get("User", ["root"])[-1], ("root", "0"))

    # -- validity ----------------------------------------------------------------------------

    def test_verify_reports_nothing(self):
        path = self.copy_with_exec_start(executable_for_verify())
        code, about, lines = verify_lines_about_unit(path)
        self.assertEqual(about, [], "\n".join(lines))
        self.assertEqual(code, 0, "\n".join(lines))

    def test_verify_would_catch_a_broken_unit(self):
        # Shows the check above has teeth: a missing binary is reported against the unit.
        missing = os.path.join(self.tmp, "no-such-hearthd")
        code, about, lines = verify_lines_about_unit(self.copy_with_exec_start(missing))
        self.assertNotEqual(code, 0, "\n".join(lines))
        self.assertTrue(about, "\n".join(lines))

    # -- service contract (SPEC §6) ----------------------------------------------------------

    def test_notify_watchdog_reload(self):
        self.assertEqual(self.service.get("Type"), ["notify"])
        self.assertEqual(self.service.get("NotifyAccess"), ["main"])
        self.assertEqual(self.service.get("ExecStart"), [SHIPPED_EXEC_START])
        self.assertEqual(self.service.get("ExecReload"), ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(self.service.get("Restart"), ["on-failure"])
        watchdog = self.service.get("WatchdogSec", [""])[-1]
        match = re.fullmatch(r"(\d+)(s|min)?", watchdog)
        self.assertIsNotNone(match, "WatchdogSec=%r" % watchdog)
        self.assertGreater(int(match.group(1)), 0)
        unit_section = self.unit.get("Unit", {})
        after = " ".join(unit_section.get("After", [])).split()
        self.assertIn("network-online.target", after)
        self.assertIn("mosquitto.service", after)
        self.assertIn("network-online.target",
                      " ".join(unit_section.get("Wants", [])).split())


if __name__ == "__main__":
    unittest.main()
