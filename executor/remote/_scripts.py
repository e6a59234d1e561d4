"""The code a bundle runs on the far host: its launcher, the probe and the installer.

Each is a constant Python program run with `python3 -I -S` (isolated, no site-packages)
on a host where pveplan is not installed yet, so it can use only the standard library and
takes its data only as argv elements, never spliced into its text. Kept apart from
`_bundle` (which builds and ships bundles) because these are read as programs of their
own, and shared with the pull node's bootstrap (`pull/_bootstrap`), which installs a
bundle the same way.
"""

RUN_PY = '''\
"""pveplan bundle launcher: run this bundle's pveplan with its own lib/ first on sys.path.

Meant for `python3 -I -S run.py ...`: isolated and without site-packages, so nothing
installed on this machine can shadow the bundled code.
"""

import os
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")

if sys.argv[1:] == ["executor", "--stdio", "--warm"]:
    # The relay to this bundle's warm executor: the standard library only, run from its
    # file, so nothing of pveplan (nor importlib's machinery) is imported here
    # (executor/remote/_attach.py).
    ATTACH = os.path.join(LIB, "pveplan", "executor", "remote", "_attach.py")
    with open(ATTACH, "rb") as source:
        attach = {"__name__": "pveplan_attach", "__file__": ATTACH}
        exec(compile(source.read(), ATTACH, "exec"), attach)
    sys.exit(attach["main"](sys.argv[0]))

sys.path.insert(0, LIB)

from pveplan.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
'''

PROBE_CODE = """\
import json, os, sys, sysconfig
os.makedirs(os.path.join(".pveplan", "bundles"), mode=0o700, exist_ok=True)
print(json.dumps({
    "python": "%d.%d" % sys.version_info[:2],
    "platform": sysconfig.get_platform(),
    "version": sys.version.split()[0],
}))
"""
"""Run as `python3 -I -S -c PROBE_CODE` in HOME: reports the interpreter and creates the
bundles directory (SFTP cannot write into a directory that does not exist yet)."""

INSTALL_CODE = """\
import hashlib, os, re, shutil, sys, tarfile

def fail(code, message):
    sys.stderr.write("pveplan bundle install: " + message + "\\n")
    sys.exit(code)

def remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass

def ready(directory):
    return os.path.isfile(os.path.join(directory, "READY"))

def check_members(tar):
    members = tar.getmembers()
    for member in members:
        name = member.name
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or parts[0] != "bundle":
            fail(5, "refusing archive member %r: outside the bundle directory" % name)
        if not (member.isfile() or member.isdir()):
            fail(5, "refusing archive member %r: not a regular file or directory" % name)
    return members

def extract(handle, members_dir):
    with tarfile.open(fileobj=handle, mode="r:gz") as tar:
        members = check_members(tar)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(members_dir, members=members, filter="data")
        else:
            tar.extractall(members_dir, members=members)

def publish(tmp, final):
    try:
        os.rename(tmp, final)
        return
    except OSError:
        pass
    if ready(final):  # an identical install won the race: keep it, drop ours
        shutil.rmtree(tmp, ignore_errors=True)
        return
    broken = final + ".broken-%d" % os.getpid()  # left by hand or by a crash: replace it
    os.rename(final, broken)
    os.rename(tmp, final)
    shutil.rmtree(broken, ignore_errors=True)

def main():
    if len(sys.argv) != 2 or not re.fullmatch("[0-9a-f]{64}", sys.argv[1]):
        fail(2, "usage: install HASH (64 lowercase hex digits)")
    digest = sys.argv[1]
    base = os.path.join(".pveplan", "bundles")
    archive = os.path.join(base, digest + ".tar.gz")
    final = os.path.join(base, digest)
    if ready(final):
        remove(archive)
        return
    try:
        handle = open(archive, "rb")
    except FileNotFoundError:
        if ready(final):
            return
        fail(4, "%s is missing (the upload did not arrive)" % archive)
    with handle:
        sha = hashlib.sha256()
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
        if sha.hexdigest() != digest:
            remove(archive)
            fail(3, "%s is corrupt: its sha256 is %s, expected %s (damaged in transfer?)"
                 % (archive, sha.hexdigest(), digest))
        handle.seek(0)
        tmp = os.path.join(base, ".%s.tmp-%d" % (digest, os.getpid()))
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o755)
        try:
            extract(handle, tmp)
            with open(os.path.join(tmp, "READY"), "w") as marker:
                marker.write(digest + "\\n")
            publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    # Kept (verified) inside the install: this host ships it on to the hosts nested in it.
    try:
        os.replace(archive, os.path.join(final, "bundle.tar.gz"))
    except FileNotFoundError:
        pass  # a concurrent identical install kept it already

main()
"""
"""Run as `python3 -I -S -c INSTALL_CODE HASH` in HOME. A constant: the only data it gets is
the hash, as an argv element. READY is written before the rename, so the final directory
appears complete or not at all."""
