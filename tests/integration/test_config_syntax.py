"""A hearth.yaml that yaml-cpp 0.7 loops on ("[a],", "--- ,", upstream jbeder/yaml-cpp#1040)
is a `file:line: message` error in bounded time and memory: for --check-config, at start, and on
SIGHUP, where the running configuration stays and the daemon keeps answering
(core/src/config/yaml_load.h)."""

import os
import resource
import signal
import subprocess
import unittest

from harness import BUILD_DIR, HEARTHD, Hub, wait_for

# The upstream loop's shapes, each a whole file or appended to a good one.
SHAPES = [",", "--- ,", "[a],", "{a: b},", "\"a\" ,", "&a ,", "&amax_members:,"]
# A regression must not take the machine with it: the children get 1 GiB of address space
# (yaml-cpp's loop reaches that in about a second) and a timeout.
LIMIT = 1 << 30


def sanitized_build():
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        return "HEARTH_SANITIZE:BOOL=ON" in f.read()


def limited():
    # ASan reserves terabytes of address space up front; there the timeout is the bound.
    if not sanitized_build():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def vm_size_kib(pid):
    return status_kib(pid, "VmSize")


class BoundedCheck(unittest.TestCase):
    def test_check_config_and_start_answer_with_file_and_line(self):
        with Hub() as hub:
            good = open(hub.config_path).read()
            for shape in SHAPES:
                for text, line in ((shape + "\n", 1), (good + shape + "\n", good.count("\n") + 1)):
                    bad = os.path.join(hub.root, "bad.yaml")
                    with open(bad, "w") as f:
                        f.write(text)
                    for args in (["--check-config", bad], ["--config", bad]):
                        r = subprocess.run([HEARTHD] + args, capture_output=True, text=True,
                                           timeout=60, preexec_fn=limited)
                        self.assertEqual(r.returncode, 1, "%r %s: %s" % (text, args, r.stderr))
                        # The shape's line, or the next one where libyaml noticed it ended.
                        self.assertRegex(r.stderr, r"(?m)^%s:(%d|%d): YAML syntax error at "
                                         r"column \d+: " % (bad.replace(".", r"\."), line,
                                                             line + 1), repr(text))
                        self.assertNotIn("bad_alloc", r.stderr)


class SighupWithALoopShape(unittest.TestCase):
    def test_reload_is_rejected_and_the_daemon_keeps_running(self):
        with Hub(plugins=["echo_plugin"], notify_socket=True) as hub:
            wait_for(lambda: hub.notify.seen("READY=1"), what="READY=1")
            hub.add_user("alice")
            t = hub.terminal("alice", "phone")
            self.assertEqual(t.call("echo", {})["greeting"], "hello")
            good = open(hub.config_path).read()
            rss_before = rss_kib(hub.proc.pid)
            if not sanitized_build():
                # A regression then ends in bad_alloc (a failed test), not in the OOM killer.
                room = vm_size_kib(hub.proc.pid) * 1024 + LIMIT
                resource.prlimit(hub.proc.pid, resource.RLIMIT_AS, (room, room))
            for shape in SHAPES:
                with open(hub.config_path, "w") as f:
                    f.write(good.replace("plugins: {}", 'plugins: {"echo": {"greeting": "hej"}}')
                            + shape + "\n")
                ready_before = hub.notify.count("READY=1")
                hub.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: hub.notify.count("READY=1") > ready_before, timeout=30,
                         what="READY after the rejected reload of %r" % shape)
                self.assertIsNone(hub.proc.poll(), "hearthd died on %r" % shape)
                # The old configuration is still the one running.
                self.assertEqual(t.call("echo", {})["greeting"], "hello", shape)
            log = hub.log_text()
            self.assertRegex(log, r"hearth\.yaml:\d+: YAML syntax error at column \d+: ")
            self.assertEqual(log.count("new configuration rejected; keeping the running one"),
                             len(SHAPES))
            # Bounded memory: the loop would have added gigabytes (ASan's quarantine keeps what
            # is freed, so its build gets more room).
            room = 512 if sanitized_build() else 64
            self.assertLess(rss_kib(hub.proc.pid), rss_before + room * 1024)

            # And a good file after them is applied.
            with open(hub.config_path, "w") as f:
                f.write(good.replace("plugins: {}", 'plugins: {"echo": {"greeting": "hej"}}'))
            hub.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: t.call("echo", {})["greeting"] == "hej", what="good config applied")
            self.assertEqual(hub.terminate(), 0)


if __name__ == "__main__":
    unittest.main()
