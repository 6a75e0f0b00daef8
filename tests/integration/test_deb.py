"""The Debian package gives a running hub on a fresh Debian 12, keeps its state on reinstall and
leaves nothing of itself (and all of mosquitto) behind on purge.

Builds the amd64 packages with tools/hearth-deb (the build tree of make deb, kept in
HEARTH_BUILD_DIR/deb, so a rerun compiles only what changed), then installs hearth into a
throwaway Debian 12 root made with mmdebstrap from Debian's mirror. Two roots are cached
between runs in HEARTH_ROOT_CACHE (/var/cache/hearth-build/test-root): the bare bookworm root,
and that root with the package's dependencies installed (keyed by its Depends field).

Two tests, each in a root of its own:

test_install_reinstall_purge (a chroot): systemd does not run in a chroot, so the test does
what the units would: it runs the ExecStartPre=/ExecStart= lines of mosquitto.service and
hearth.service, the latter as its User=/Group= with its UMask= and StateDirectory=. Services run
in a network namespace of the test's own (loopback only), so the root's broker on port 1883
meets nothing on the host. From outside the root the test then checks: hearthctl status through
the installed config, a user added, a terminal (mosquitto_rr, as that user) says hello and gets
its openId, `hearthctl backup` holds the broker's accounts without any configuration;
reinstalling the same package keeps the password, the user and the openId; purge removes the
state, the password and the broker store, and leaves mosquitto's files as its package installed
them.

test_boot_with_systemd (systemd-nspawn --boot, systemd as PID 1, loopback-only network): the
package installed into the running system enables and starts both services itself; from outside
the container hearthctl status answers, a user says hello; after a power-off and a new boot both
services are active again and the hub has kept the user and the openId. Without
systemd-nspawn (package systemd-container), or when the container does not boot here, this test
is skipped with nspawn's own words.

Needs root, mmdebstrap, unshare/nsenter and network access to Debian's mirror for the first
run; without them the tests are skipped. Env: HEARTH_SOURCE_DIR, HEARTH_BUILD_DIR,
HEARTH_DEB_BUILD (where the packages are built, default HEARTH_BUILD_DIR/deb; make deb uses
build-deb), HEARTH_ROOT_CACHE, HEARTH_MIRROR.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import zipfile

SOURCE_DIR = os.environ.get(
    "HEARTH_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("HEARTH_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
CACHE = os.path.join(os.environ.get("HEARTH_ROOT_CACHE", "/var/cache/hearth-build"), "test-root")
MIRROR = os.environ.get("HEARTH_MIRROR", "http://deb.debian.org/debian")
ARCH = "amd64"
# The hearth package, not counting its dependencies: at most 3 MB installed (dpkg's
# Installed-Size is in KiB: 3,000,000 bytes are 2,929 KiB).
MAX_INSTALLED_KIB = 3 * 1000 * 1000 // 1024
HELLO = {"appId": "deb-test", "deviceModel": "Pixel 8", "deviceName": "Alice phone"}
PASSWORD_FILE = "etc/hearth/broker.pass"
DYNSEC_FILE = "var/lib/mosquitto/hearth-dynamic-security.json"
# Files a purged install may leave in the root: mosquitto's own data and logs (it ran), dpkg's
# and the account databases' backups. Anything else left behind fails the test.
ALLOWED_LEFTOVERS = re.compile(
    r"^(var/lib/mosquitto/mosquitto\.db|var/log/.*|var/lib/dpkg/.*|var/cache/.*|"
    r"etc/(passwd|group|shadow|gshadow)-?|etc/\.pwd\.lock|var/lib/private|run/.*|tmp/.*)$")


def log(msg):
    print("test_deb: " + msg, flush=True)


def run(args, timeout=1800, check=True, **kw):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (
            " ".join(shlex.quote(a) for a in args), proc.returncode, proc.stdout[-6000:],
            proc.stderr[-6000:]))
    return proc


def parse_unit(text):
    """The [Service] section: {key: [values]}."""
    service, current = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line
            continue
        if current == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            service.setdefault(key.strip(), []).append(value.strip())
    return service


def command_of(line):
    """An Exec*= value as argv: systemd's prefixes (-, @, +, !) dropped."""
    return shlex.split(line.lstrip("-@+!:"))


class Root:
    """A throwaway Debian root under a mount namespace of its own (proc, dev, apt archives),
    with its services in a network namespace of their own."""

    def __init__(self, path):
        self.path = path
        self.procs = []
        self.mnt = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--fork",
                                     "--kill-child", "sleep", "infinity"])
        self.net = subprocess.Popen(["unshare", "--net", "--fork", "--kill-child", "sleep",
                                     "infinity"])
        time.sleep(0.2)
        self.mnt_pid = self._child(self.mnt.pid)
        self.net_pid = self._child(self.net.pid)
        run(["nsenter", "--net=/proc/%d/ns/net" % self.net_pid, "ip", "link", "set", "lo", "up"])
        archives = os.path.join(CACHE, "archives")
        os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
        self.host("mount -t proc proc %(r)s/proc && mount --rbind /dev %(r)s/dev && "
                  "mount --bind %(a)s %(r)s/var/cache/apt/archives" % {
                      "r": shlex.quote(path), "a": shlex.quote(archives)})
        # No service starts during dpkg runs (no systemd here, and no init scripts either).
        with open(os.path.join(path, "usr/sbin/policy-rc.d"), "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(os.path.join(path, "usr/sbin/policy-rc.d"), 0o755)

    @staticmethod
    def _child(pid):
        for _ in range(50):
            try:
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    children = f.read().split()
                if children:
                    return int(children[0])
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        raise AssertionError("namespace holder %d has no child" % pid)

    def host(self, script, **kw):
        """A host shell command inside the root's mount namespace."""
        return run(["nsenter", "--mount=/proc/%d/ns/mnt" % self.mnt_pid, "sh", "-ec", script],
                   **kw)

    def argv(self, args, net=False):
        ns = ["nsenter", "--mount=/proc/%d/ns/mnt" % self.mnt_pid]
        if net:
            ns.append("--net=/proc/%d/ns/net" % self.net_pid)
        env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8",
               "DEBIAN_FRONTEND=noninteractive"]
        return ns + ["chroot", self.path] + env + list(args)

    def sh(self, script, net=False, **kw):
        """A shell command in the root (host network unless net=True)."""
        return run(self.argv(["sh", "-ec", script], net=net), **kw)

    def outside(self, args, **kw):
        """A host program in the services' network namespace, i.e. a client on the root's LAN."""
        return run(["nsenter", "--net=/proc/%d/ns/net" % self.net_pid] + list(args), **kw)

    def unit(self, name):
        for d in ("lib/systemd/system", "usr/lib/systemd/system"):
            p = os.path.join(self.path, d, name)
            if os.path.exists(p):
                with open(p) as f:
                    return parse_unit(f.read())
        raise AssertionError("no unit %s in the root" % name)

    def start(self, unit_name):
        """Starts a service the way its unit would: ExecStartPre lines as root, then ExecStart
        as User=/Group= with UMask= and StateDirectory=."""
        unit = self.unit(unit_name)
        user = unit.get("User", ["root"])[-1]
        group = unit.get("Group", [user])[-1]
        for state in unit.get("StateDirectory", []):
            mode = unit.get("StateDirectoryMode", ["0755"])[-1]
            for d in state.split():
                self.sh("mkdir -p /var/lib/%s && chown %s:%s /var/lib/%s && chmod %s /var/lib/%s"
                        % (d, user, group, d, mode, d))
        for pre in unit.get("ExecStartPre", []):
            self.sh(" ".join(shlex.quote(a) for a in command_of(pre)))
        argv = command_of(unit["ExecStart"][-1])
        umask = unit.get("UMask", ["0022"])[-1]
        wrap = ["sh", "-c", 'umask %s && exec "$@"' % umask, unit_name]
        if user != "root":
            wrap = ["setpriv", "--reuid=" + user, "--regid=" + group, "--init-groups"] + wrap
        log_path = os.path.join(self.path, "tmp", unit_name + ".log")
        out = open(log_path, "ab")
        proc = subprocess.Popen(self.argv(wrap + argv, net=True), stdout=out,
                                stderr=subprocess.STDOUT)
        out.close()
        self.procs.append((unit_name, proc))
        return proc

    def log_of(self, unit_name):
        p = os.path.join(self.path, "tmp", unit_name + ".log")
        return open(p, errors="replace").read()[-4000:] if os.path.exists(p) else ""

    def stop_all(self):
        """SIGTERM, as systemctl stop does, hearthd before mosquitto."""
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []

    def close(self):
        self.stop_all()
        for p in (self.net, self.mnt):
            p.kill()
            p.wait()


class Container:
    """A root booted with systemd-nspawn: systemd as PID 1 (so dpkg's maintainer scripts enable
    and start the units themselves), a private network (loopback only)."""

    def __init__(self, path, name):
        self.path = path
        self.name = name
        self.console = path + ".console.log"
        self.proc = None
        self.init_pid = None

    def boot(self, first=True):
        """Boots the container; returns systemd's state (running or degraded). The first boot
        raises SkipTest when nspawn cannot boot a container on this machine; a later one that
        fails is a failure."""
        out = open(self.console, "ab")
        # No machined and no D-Bus on the host: --register=no, and --keep-unit (no scope).
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--directory", self.path, "--machine", self.name,
             "--boot", "--private-network", "--register=no", "--keep-unit"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 60
        cannot = unittest.SkipTest if first else AssertionError
        while self.init_pid is None:
            if self.proc.poll() is not None:
                raise cannot("systemd-nspawn --boot exited %d here:\n%s"
                             % (self.proc.returncode, self.console_tail()))
            if time.monotonic() > deadline:
                raise cannot("no systemd in the container within 60 s:\n" + self.console_tail())
            self.init_pid = self._find_init(self.proc.pid)
            time.sleep(0.2)
        # Until systemd has started its manager, systemctl cannot reach it.
        deadline = time.monotonic() + 180
        while True:
            answer = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                              timeout=180)
            state = answer.stdout.strip()
            if state in ("running", "degraded"):
                return state
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("the container's systemd is %r (%s):\n%s\n%s" % (
                    state, answer.stderr.strip(),
                    self.run(["systemctl", "--failed", "--no-pager"], check=False).stdout,
                    self.console_tail()))
            time.sleep(0.5)

    @staticmethod
    def _find_init(pid):
        """The descendant of nspawn that is PID 1 of its own PID namespace."""
        todo = [pid]
        while todo:
            p = todo.pop()
            try:
                with open("/proc/%d/status" % p) as f:
                    nspid = [l for l in f if l.startswith("NSpid:")]
                if p != pid and nspid and nspid[0].split()[-1] == "1":
                    with open("/proc/%d/comm" % p) as f:
                        return p if f.read().strip() == "systemd" else None
                with open("/proc/%d/task/%d/children" % (p, p)) as f:
                    todo.extend(int(c) for c in f.read().split())
            except FileNotFoundError:
                pass
        return None

    def console_tail(self):
        with open(self.console, errors="replace") as f:
            return re.sub(r"\x1b\[[0-9;]*m", "", f.read())[-3000:]

    def run(self, args, **kw):
        """A command inside the container (its mount, PID and network namespaces)."""
        return run(["nsenter", "--target", str(self.init_pid), "--mount", "--uts", "--ipc",
                    "--net", "--pid", "--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                    "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"] + list(args), **kw)

    def outside(self, args, **kw):
        """A program outside the container, on its network: a client on the hub's LAN."""
        return run(["nsenter", "--net=/proc/%d/ns/net" % self.init_pid] + list(args), **kw)

    def poweroff(self):
        if self.proc is None:
            return
        if self.proc.poll() is None and self.init_pid is not None:
            self.run(["systemctl", "poweroff"], check=False, timeout=60)
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # nspawn shuts the container down in order
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.init_pid = None
        # nspawn leaves its mount-propagation directory on a host without systemd.
        shutil.rmtree("/run/systemd/nspawn/propagate/" + self.name, ignore_errors=True)


def deb_depends(deb):
    return run(["dpkg-deb", "-f", deb, "Depends"]).stdout.strip()


def make_base_root():
    """The cached bare bookworm root (mmdebstrap --variant=apt), as a tarball."""
    tar = os.path.join(CACHE, "bookworm-%s-apt.tar" % ARCH)
    if not os.path.exists(tar):
        os.makedirs(CACHE, exist_ok=True)
        log("creating the base root %s from %s (once)" % (tar, MIRROR))
        proc = run(["mmdebstrap", "--variant=apt", "--mode=root", "--format=tar",
                    "--architectures=" + ARCH,
                    "--skip=cleanup/apt/lists", "bookworm", tar + ".tmp", MIRROR],
                   check=False, timeout=1800)
        if proc.returncode != 0:
            if os.path.exists(tar + ".tmp"):
                os.unlink(tar + ".tmp")
            raise unittest.SkipTest("cannot make a Debian 12 root (mirror %s unreachable?):\n%s"
                                    % (MIRROR, proc.stderr[-2000:]))
        os.rename(tar + ".tmp", tar)
    return tar


def extract(tar, dest):
    os.makedirs(dest)
    run(["tar", "-C", dest, "--numeric-owner", "-xpf", tar])


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (chroot, mount and network namespaces)")
        cache_file = os.path.join(BUILD_DIR, "CMakeCache.txt")
        if os.path.exists(cache_file) and re.search(r"^HEARTH_SANITIZE:\w+=ON$",
                                                   open(cache_file).read(), re.M):
            # The package is built from the tree, not from this build: the normal build's run
            # of this test covers it.
            raise unittest.SkipTest("sanitizer build (make test-asan): the package is tested once")
        for tool in ("mmdebstrap", "unshare", "nsenter", "dpkg-buildpackage", "lintian",
                     "mosquitto_rr"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest("%s not installed (tools/install-deps.sh)" % tool)
        cls.timings = []
        t = time.monotonic()
        out = os.environ.get("HEARTH_DEB_BUILD", os.path.join(BUILD_DIR, "deb"))
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck", JOBS=os.environ.get("JOBS", "2"))
        build = run([os.path.join(SOURCE_DIR, "tools", "hearth-deb"), out, ARCH], env=env,
                    timeout=3000)
        log(build.stdout.strip().splitlines()[-1] if build.stdout.strip() else "no output")
        version = run(["dpkg-parsechangelog", "-l", os.path.join(SOURCE_DIR, "debian/changelog"),
                       "-S", "Version"]).stdout.strip()
        cls.deb = os.path.join(out, "hearth_%s_%s.deb" % (version, ARCH))
        cls.version = version
        cls.dev_deb = os.path.join(out, "hearth-dev_%s_%s.deb" % (version, ARCH))
        cls.timings.append(("build the packages and lintian (make deb)", time.monotonic() - t))

        t = time.monotonic()
        base = make_base_root()
        depends = deb_depends(cls.deb)
        key = hashlib.sha256(depends.encode()).hexdigest()[:12]
        deps_tar = cls.deps_tar = os.path.join(CACHE, "bookworm-%s-deps-%s.tar" % (ARCH, key))
        cls.tmp = tempfile.mkdtemp(prefix="hearth-deb-test-", dir="/var/tmp")
        cls.root_path = os.path.join(cls.tmp, "root")
        cls.root = None
        try:
            if not os.path.exists(deps_tar):
                log("installing the package's dependencies into a copy of the base root (once)")
                extract(base, cls.root_path)
                root = Root(cls.root_path)
                resolv = os.path.join(cls.root_path, "etc/resolv.conf")
                if os.path.lexists(resolv):
                    os.unlink(resolv)
                shutil.copy("/etc/resolv.conf", resolv)  # apt reaches the mirror
                try:
                    satisfy = ("apt-get satisfy -y -q --no-install-recommends %s"
                               % shlex.quote(depends))
                    if root.sh(satisfy, check=False).returncode != 0:
                        # Stale package lists: fetch them again. No mirror: skipped, not failed.
                        update = root.sh("apt-get update -q", check=False)
                        if update.returncode != 0 or "Err:" in update.stdout:
                            raise unittest.SkipTest("Debian's mirror is unreachable:\n"
                                                    + update.stdout[-2000:] + update.stderr[-2000:])
                        root.sh(satisfy)
                    os.unlink(os.path.join(cls.root_path, "usr/sbin/policy-rc.d"))
                    os.unlink(resolv)
                finally:
                    root.close()
                run(["tar", "-C", cls.root_path, "--numeric-owner", "-cf", deps_tar + ".tmp",
                     "--exclude=./proc/*", "--exclude=./dev/*", "."])
                os.rename(deps_tar + ".tmp", deps_tar)
                shutil.rmtree(cls.root_path)
            extract(deps_tar, cls.root_path)
            cls.root = Root(cls.root_path)
            shutil.copy(cls.deb, os.path.join(cls.root_path, "tmp", "hearth.deb"))
        except BaseException:
            cls.tearDownClass()
            raise
        cls.timings.append(("a Debian 12 root with the dependencies (cached)",
                            time.monotonic() - t))

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "root", None) is not None:
            cls.root.close()
            cls.root = None
        if getattr(cls, "tmp", None):
            shutil.rmtree(cls.tmp, ignore_errors=True)
        for name, seconds in getattr(cls, "timings", []):
            log("%-52s %6.1f s" % (name, seconds))

    # -- helpers --------------------------------------------------------------------------

    def file(self, rel):
        return os.path.join(self.root_path, rel)

    def ctl(self, *args, check=True):
        return self.root.sh("hearthctl --timeout 5 " + " ".join(shlex.quote(a) for a in args),
                            net=True, check=check, timeout=60)

    def start_services(self):
        self.root.start("mosquitto.service")
        self.wait_for(lambda: self.root.outside(
            ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/1883"], check=False).returncode == 0,
            "mosquitto listening on 127.0.0.1:1883", "mosquitto.service")
        self.root.start("hearth.service")
        self.wait_for(lambda: self.ctl("status", check=False).returncode == 0,
                      "hearthctl status answered", "hearth.service")

    def wait_for(self, condition, what, unit, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            for name, proc in self.root.procs:
                if proc.poll() is not None:
                    self.fail("%s exited %d before %s:\n%s"
                              % (name, proc.returncode, what, self.root.log_of(name)))
            time.sleep(0.2)
        self.fail("no %s within %d s:\n%s" % (what, seconds, self.root.log_of(unit)))

    def hello(self):
        """A terminal of alice's says hello, from outside the root; returns its openId."""
        return self.hello_via(self.root.outside)

    def hello_via(self, outside):
        answer = self.request("hello", HELLO, "1", outside)
        self.assertTrue(answer.get("ok"), answer)
        open_id = answer["result"]["openId"]
        self.assertRegex(open_id, r"^\S{8,}$")
        return open_id

    def request(self, method, params, request_id, outside=None):
        """alice's terminal calls METHOD from outside the root; returns the answer."""
        proc = (outside or self.root.outside)(
            ["mosquitto_rr", "-V", "5", "-h", "127.0.0.1", "-p", "1883", "-u", "alice", "-P",
             "alicepass1", "-i", "alice-phone", "-t", "hearth/v1/u/alice/phone/req/" + method,
             "-e", "hearth/v1/u/alice/phone/res/" + method, "-W", "20",
             "-m", json.dumps({"id": request_id, "params": params})], timeout=60)
        answer = json.loads(proc.stdout)
        self.assertEqual(answer.get("id"), request_id, answer)
        return answer

    def build_outside_plugin(self):
        """examples/plugin-hello built against nothing but the hearth-dev package's files, with
        find_package(hearth); pkg-config sees the same SDK. Returns the module's path."""
        dev = os.path.join(self.tmp, "hearth-dev")
        run(["dpkg-deb", "-x", self.dev_deb, dev])
        pc_dir = run(["sh", "-c", "dirname %s/usr/lib/*/pkgconfig/hearth.pc" % dev]).stdout.strip()
        env = dict(os.environ, PKG_CONFIG_PATH=pc_dir, PKG_CONFIG_SYSROOT_DIR=dev)
        cflags = run(["pkg-config", "--cflags", "hearth"], env=env).stdout
        self.assertTrue(os.path.exists(os.path.join(cflags.split()[0][2:], "hearth/plugin.h")),
                        cflags)
        env.pop("PKG_CONFIG_SYSROOT_DIR")
        plugindir = run(["pkg-config", "--variable=plugindir", "hearth"], env=env).stdout.strip()
        build = os.path.join(self.tmp, "hello-build")
        run(["cmake", "-S", os.path.join(SOURCE_DIR, "examples", "plugin-hello"), "-B", build,
             "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_PREFIX_PATH=" + os.path.join(dev, "usr")])
        run(["cmake", "--build", build])
        return os.path.join(build, "hello_sdk.so"), plugindir

    def snapshot(self):
        skip = ("proc", "dev", "sys")
        files = set()
        for top in os.listdir(self.root_path):
            if top in skip:
                continue
            base = os.path.join(self.root_path, top)
            if not os.path.isdir(base) or os.path.islink(base):
                files.add(top)
                continue
            for d, dirs, names in os.walk(base):
                rel = os.path.relpath(d, self.root_path)
                files.add(rel)
                files.update(os.path.join(rel, n) for n in names)
        return files

    # -- the tests --------------------------------------------------------------------------

    def test_boot_with_systemd(self):
        """The package in a booted Debian 12: both services enabled and started by dpkg, and
        back after a reboot with the hub's state."""
        if shutil.which("systemd-nspawn") is None:
            self.skipTest("systemd-nspawn not installed (systemd-container, tools/install-deps.sh)")
        path = os.path.join(self.tmp, "boot-root")
        extract(self.deps_tar, path)
        shutil.copy(self.deb, os.path.join(path, "var/tmp/hearth.deb"))
        box = Container(path, "hearth-deb-test-%d" % os.getpid())
        try:
            state = box.boot()
            log("container booted with systemd (%s)" % state)
            t = time.monotonic()
            box.run(["dpkg", "-i", "/var/tmp/hearth.deb"], timeout=300)
            installed = time.monotonic()

            def ctl(*args, check=True):
                # The root's hearthctl and installed config, from outside the container.
                return box.outside(["chroot", path, "hearthctl", "--timeout", "5"] + list(args),
                                   check=check, timeout=60)

            def services_up(what):
                for unit in ("mosquitto.service", "hearth.service"):
                    enabled = box.run(["systemctl", "is-enabled", unit], check=False)
                    self.assertEqual(enabled.stdout.strip(), "enabled", "%s %s" % (unit, what))
                deadline = time.monotonic() + 60
                while True:
                    active = [box.run(["systemctl", "is-active", u], check=False).stdout.strip()
                              for u in ("mosquitto.service", "hearth.service")]
                    if active == ["active", "active"] and ctl("status", check=False).returncode == 0:
                        return
                    if time.monotonic() > deadline:
                        self.fail("%s: mosquitto %s, hearth %s, hearthctl status:\n%s\n%s" % (
                            what, active[0], active[1], ctl("status", check=False).stderr,
                            box.run(["journalctl", "--no-pager", "-n", "40", "-u", "hearth",
                                     "-u", "mosquitto"], check=False).stdout))
                    time.sleep(0.3)

            services_up("after dpkg -i")
            self.timings.append(("systemd: dpkg -i hearth.deb", installed - t))
            self.timings.append(("systemd: dpkg -i to a hub that answers", time.monotonic() - t))
            status = json.loads(ctl("--json", "status").stdout)
            self.assertIn("plugins", json.dumps(status))
            ctl("user", "add", "alice", "--password", "alicepass1")
            open_id = self.hello_via(box.outside)

            # Power off, boot again: both services come back with the hub's state.
            box.poweroff()
            t = time.monotonic()
            box.boot(first=False)
            services_up("after a reboot")
            self.timings.append(("systemd: boot to a hub that answers", time.monotonic() - t))
            self.assertIn("alice", ctl("user", "list").stdout)
            self.assertEqual(self.hello_via(box.outside), open_id, "the reboot lost the hub's state")
        finally:
            box.poweroff()
            shutil.rmtree(path, ignore_errors=True)

    def test_install_reinstall_purge(self):
        size_kib = int(run(["dpkg-deb", "-f", self.deb, "Installed-Size"]).stdout)
        log("hearth installed size: %d KiB (%.2f MB); hearth-dev: %s KiB" % (
            size_kib, size_kib * 1024 / 1e6,
            run(["dpkg-deb", "-f", self.dev_deb, "Installed-Size"]).stdout.strip()))
        before = self.snapshot()
        mosquitto_files = self.root.sh("dpkg-query -L mosquitto").stdout.split()

        # Install: dpkg -i to a hub that answers hearthctl status.
        t = time.monotonic()
        self.root.sh("dpkg -i /tmp/hearth.deb", timeout=300)
        installed = time.monotonic()
        self.start_services()
        answering = time.monotonic()
        self.timings.append(("dpkg -i hearth.deb", installed - t))
        self.timings.append(("dpkg -i to a hub that answers", answering - t))

        # What the package set up.
        pw = os.stat(self.file(PASSWORD_FILE))
        self.assertEqual(pw.st_mode & 0o777, 0o640)
        self.assertEqual(pw.st_uid, 0)
        group = self.root.sh("getent group hearth").stdout.split(":")
        self.assertEqual(pw.st_gid, int(group[2]))
        with open(self.file(PASSWORD_FILE)) as f:
            password = f.read()
        self.assertGreaterEqual(len(password.strip()), 20)
        conffiles = self.root.sh("cat /var/lib/dpkg/info/hearth.conffiles").stdout.split()
        self.assertIn("/etc/hearth/hearth.yaml", conffiles)
        self.assertIn("/etc/mosquitto/conf.d/hearth.conf", conffiles)
        state = os.stat(self.file("var/lib/hearth"))
        self.assertEqual(state.st_mode & 0o777, 0o700)

        status = json.loads(self.ctl("--json", "status").stdout)
        self.assertIn("plugins", json.dumps(status))
        self.ctl("user", "add", "alice", "--password", "alicepass1")
        open_id = self.hello()
        self.assertIn("alice", self.ctl("user", "list").stdout)
        # The broker is hearth's: no anonymous client, and alice only in her own tree.
        anon = self.root.outside(["mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-t", "x",
                                  "-m", "x"], check=False)
        self.assertNotEqual(anon.returncode, 0, "anonymous publish was accepted")
        # A packaged hub's backup holds the broker's accounts (the users' passwords) out of the
        # box: broker.dynsec_file defaults to the package's Dynamic Security file.
        backup = self.ctl("backup", "/var/tmp/hearth-backup.zip").stdout
        self.assertIn("broker accounts included", backup)
        with zipfile.ZipFile(self.file("var/tmp/hearth-backup.zip")) as z:
            dynsec = json.loads(z.read("broker/dynamic-security.json"))
        self.assertIn("alice", [c.get("username") for c in dynsec.get("clients", [])], dynsec)
        os.unlink(self.file("var/tmp/hearth-backup.zip"))

        # Reinstall the same package: the password, the user and the openId are kept. A plugin
        # built outside the tree with hearth-dev is loaded from the package's plugin directory.
        self.root.stop_all()
        t = time.monotonic()
        module, plugindir = self.build_outside_plugin()
        self.timings.append(("build examples/plugin-hello with hearth-dev", time.monotonic() - t))
        self.assertTrue(os.path.isdir(self.file(plugindir.lstrip("/"))), plugindir)
        outside_plugin = os.path.join(plugindir.lstrip("/"), "hello_sdk.so")
        shutil.copy(module, self.file(outside_plugin))
        t = time.monotonic()
        self.root.sh("dpkg -i /tmp/hearth.deb", timeout=300)
        self.start_services()
        self.timings.append(("reinstall to a hub that answers", time.monotonic() - t))
        self.assertIn("hello_sdk", self.ctl("plugins").stdout)
        answer = self.request("sdkHello", {}, "7")
        self.assertTrue(answer.get("ok"), answer)
        self.assertEqual(answer["result"],
                         {"greeting": "hello from an outside plugin", "userId": "alice"})
        with open(self.file(PASSWORD_FILE)) as f:
            self.assertEqual(f.read(), password, "reinstalling changed the broker password")
        self.assertIn("alice", self.ctl("user", "list").stdout)
        self.assertEqual(self.hello(), open_id, "reinstalling lost the hub's state")

        # Purge: everything the package made is gone, mosquitto is as its package left it.
        self.root.stop_all()
        os.unlink(self.file(outside_plugin))  # not the package's: dpkg would leave it
        self.root.sh("dpkg --purge hearth", timeout=300)
        for rel in ("var/lib/hearth", "etc/hearth", DYNSEC_FILE,
                    "etc/mosquitto/conf.d/hearth.conf", "usr/sbin/hearthd"):
            self.assertFalse(os.path.lexists(self.file(rel)), "%s is left after purge" % rel)
        verify = self.root.sh("dpkg --verify mosquitto", check=False)
        self.assertEqual(verify.stdout.strip(), "", "mosquitto's files changed")
        for path in mosquitto_files:
            self.assertTrue(os.path.lexists(self.file(path.lstrip("/"))),
                            "%s (package mosquitto) is gone after purge" % path)
        after = self.snapshot()
        self.assertEqual(sorted(before - after), [], "purge removed files it did not make")
        left = sorted(f for f in after - before if not ALLOWED_LEFTOVERS.match(f))
        self.assertEqual(left, [], "purge left these behind")
        # mosquitto still starts on its own configuration.
        self.root.start("mosquitto.service")
        self.wait_for(lambda: self.root.outside(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-t", "x", "-m", "x"],
            check=False).returncode == 0,
            "anonymous local publish on mosquitto's own configuration", "mosquitto.service")
        self.root.stop_all()

        print("installed size: %d KiB (target: at most %d KiB)" % (size_kib, MAX_INSTALLED_KIB))
        self.assertLessEqual(size_kib, MAX_INSTALLED_KIB,
                             "the hearth package installs %d KiB, more than %d KiB" % (
                                 size_kib, MAX_INSTALLED_KIB))


if __name__ == "__main__":
    unittest.main()
