#!/usr/bin/env python3
"""A stand-in for `systemctl`, for the runbook test (crates/server/tests/it/systemd.rs).

No systemd runs where the tests run, so this plays it for the units the runbooks of
docs/operations.md install: it reads the installed unit file under $STUB_ROOT/etc/systemd/
system, and does what systemd would with its Environment=, StateDirectory=, Type= and
Exec*= lines: a `Type=exec` unit runs in the background (its pid in $STUB_ROOT/stub), a
`Type=oneshot` unit runs its commands in order. The absolute paths /etc/, /var/ and
/usr/local/ in a unit are taken under $STUB_ROOT, as the test takes them in the runbooks.
Every call is logged to $STUB_ROOT/stub/systemctl.log. Anything else is refused loudly.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time

ROOT = os.environ["STUB_ROOT"]
STUB = os.path.join(ROOT, "stub")
UNITS = os.path.join(ROOT, "etc", "systemd", "system")
PREFIX = re.compile(r"(?<![\w./-])(/etc/|/var/|/usr/local/)")


def mapped(text):
    return PREFIX.sub(lambda m: ROOT + m.group(1), text)


def fail(msg, code=1):
    print(f"systemctl (test stub): {msg}", file=sys.stderr)
    sys.exit(code)


def unit_path(name):
    if "." not in name:
        name += ".service"
    path = os.path.join(UNITS, name)
    if not os.path.isfile(path):
        fail(f"Unit {name} not found.", 5)
    return name, path


def parse(path):
    keys = {}
    section = None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        keys.setdefault((section, k), []).append(v)
    return keys


def unescape(cmd):
    # systemd's specifiers and escapes the units use: %% and $$.
    return cmd.replace("%%", "\0").replace("$$", "$").replace("\0", "%")


def argv(cmd):
    return [mapped(a) for a in shlex.split(unescape(cmd))]


def environment(keys):
    env = {"PATH": os.environ["PATH"]}
    for assignment in keys.get(("Service", "Environment"), []):
        k, _, v = assignment.partition("=")
        env[k] = mapped(v)
    return env


def pid_file(name):
    return os.path.join(STUB, name + ".pid")


def running(name):
    try:
        pid = int(open(pid_file(name)).read())
    except FileNotFoundError:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    # A zombie is not running: reap it if it is ours, else look at /proc.
    try:
        state = open(f"/proc/{pid}/stat").read().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return None
    return None if state == "Z" else pid


def start(name):
    name, path = unit_path(name)
    if name.endswith(".timer"):
        return
    keys = parse(path)
    env = environment(keys)
    for d in keys.get(("Service", "StateDirectory"), []):
        for one in d.split():
            os.makedirs(os.path.join(ROOT, "var", "lib", one), mode=0o700, exist_ok=True)
    kind = keys.get(("Service", "Type"), ["simple"])[-1]
    if kind == "oneshot":
        for key in ("ExecStartPre", "ExecStart", "ExecStartPost"):
            for cmd in keys.get(("Service", key), []):
                r = subprocess.run(argv(cmd), env=env)
                if r.returncode != 0:
                    fail(f"{name}: {key} exited with {r.returncode}: {cmd}")
        return
    if running(name):
        return
    (cmd,) = keys[("Service", "ExecStart")]
    log_path = os.path.join(STUB, name + ".log")
    before = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    log = open(log_path, "ab")
    p = subprocess.Popen(
        argv(cmd), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True,
    )
    with open(pid_file(name), "w") as f:
        f.write(str(p.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if p.poll() is not None:
            fail(f"{name} exited with {p.returncode} at start; its log: {log_path}")
        with open(log_path, "rb") as f:
            f.seek(before)
            if b" listening on http://" in f.read():
                return
        time.sleep(0.05)
    fail(f"{name} did not start within 30 s; its log: {log_path}")


def stop(name):
    name, _ = unit_path(name)
    pid = running(name)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while running(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(name):
        fail(f"{name} still runs 30 s after SIGTERM")
    os.remove(pid_file(name))


def main():
    args = sys.argv[1:]
    with open(os.path.join(STUB, "systemctl.log"), "a") as f:
        f.write(" ".join(args) + "\n")
    if not args:
        fail("no command")
    cmd, rest = args[0], args[1:]
    now = "--now" in rest
    units = [u for u in rest if not u.startswith("-")]
    if cmd == "daemon-reload" and not units:
        return
    if cmd in ("start", "stop", "restart", "enable") and units:
        for u in units:
            unit_path(u)
            if cmd == "stop" or cmd == "restart":
                stop(u)
            if cmd in ("start", "restart") or (cmd == "enable" and now):
                start(u)
        return
    fail(f"unsupported: systemctl {' '.join(args)}")


main()
