"""The first thing a pull-mode VM runs: fetch pveplan from the spec server, then converge.

cloud-init runs it once, as `python3 -I -S -c BOOTSTRAP_CODE` (a runcmd entry), before
pveplan exists on the node, so it is standard library only and a constant: everything it
needs comes from files cloud-init wrote (`root/.pveplan/pull/pull.json`), nothing from its
command line. It:

1. reads pull.json under `$PVEPLAN_SYSROOT` (else `/`) and works in root's home there;
2. unless `.pveplan/bundles/HASH/READY` exists, downloads `GET /bundle/HASH` over HTTPS
   into `.pveplan/bundles/HASH.tar.gz`. The server's certificate is pinned: the SHA-256 of
   its DER form must equal pull.json's fingerprint, checked right after the handshake and
   before a single byte of the request is sent (no CA, no hostname: the pin replaces both).
   Connection failures and 5xx answers are retried with backoff for up to `DEADLINE`;
3. installs it with the same `INSTALL_CODE` the driver uses for nested hosts (one
   installer: it re-checks the sha256, extracts safely, publishes with READY);
4. runs `run.py spec get` and, if that worked, `run.py config apply` from the bundle.

The exit status is that of the last step that failed (0 when all worked). Progress goes
to stderr, one line per step; the token is never read here (the bundle needs none).
"""

from __future__ import annotations

from pveplan.executor.remote._scripts import INSTALL_CODE

DEADLINE = 300.0
"""Seconds the bundle download keeps retrying a server that is not reachable yet."""

_TEMPLATE = r'''
import hashlib, hmac, http.client, json, os, re, socket, ssl, subprocess, sys, time
import urllib.parse

INSTALL_CODE = @INSTALL_CODE@
DEADLINE = @DEADLINE@
TIMEOUT = 30.0


def log(message):
    sys.stderr.write("pveplan bootstrap: " + message + "\n")
    sys.stderr.flush()


class Final(Exception):
    """Retrying cannot help (a wrong pin, a refusal): stop with this message."""


class Again(Exception):
    """The server is not there yet, or failed for now: retry until the deadline."""


def read_config():
    path = os.path.join(".pveplan", "pull", "pull.json")
    try:
        with open(path, "rb") as handle:
            config = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise Final("%s is missing: this VM was not set up for pull mode" % path)
    except (OSError, ValueError) as exc:
        raise Final("cannot read %s: %s" % (path, exc))
    if not isinstance(config, dict):
        raise Final("%s is not a JSON object" % path)
    server = str(config.get("server") or "")
    url = urllib.parse.urlsplit(server)
    if url.scheme != "https" or not url.hostname:
        raise Final("pull.json: server %r is not an https URL" % server)
    pin = str(config.get("fingerprint") or "").strip().lower()
    for prefix in ("sha256 fingerprint=", "sha256fingerprint=", "sha256:", "sha256="):
        if pin.startswith(prefix):
            pin = pin[len(prefix):]
            break
    pin = re.sub(r"[\s:]", "", pin)
    if not re.fullmatch("[0-9a-f]{64}", pin):
        raise Final("pull.json: fingerprint is not a SHA-256 in hex")
    bundle = str(config.get("bundle") or "")
    if not re.fullmatch("[0-9a-f]{64}", bundle):
        raise Final("pull.json: bundle is not a sha256 in hex")
    return url, pin, bundle


def connect(url, pin):
    """A TLS connection whose certificate matches the pin, before anything is sent."""
    port = url.port or 443
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the pin replaces the CA and hostname checks
    context.verify_mode = ssl.CERT_NONE
    try:
        raw = socket.create_connection((url.hostname, port), timeout=TIMEOUT)
    except OSError as exc:
        raise Again("cannot connect to %s:%d: %s" % (url.hostname, port, exc))
    try:
        tls = context.wrap_socket(raw, server_hostname=url.hostname)
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        raise Again("TLS handshake with %s:%d failed: %s" % (url.hostname, port, exc))
    der = tls.getpeercert(binary_form=True) or b""
    seen = hashlib.sha256(der).hexdigest()
    if not hmac.compare_digest(seen, pin):
        tls.close()
        raise Final(
            "the server at %s:%d presented a certificate with SHA-256 %s, not the pinned "
            "one: refusing to talk to it" % (url.hostname, port, seen)
        )
    conn = http.client.HTTPConnection(url.hostname, port, timeout=TIMEOUT)
    conn.sock = tls  # already connected and checked: http.client does not reconnect
    return conn


def download(url, pin, bundle, dest):
    path = url.path.rstrip("/") + "/bundle/" + bundle
    conn = connect(url, pin)
    try:
        conn.request("GET", path, headers={"Accept": "application/gzip"})
        response = conn.getresponse()
        if response.status != 200:
            detail = response.read(500).decode("utf-8", "replace").strip()
            message = "GET %s: HTTP %d %s" % (path, response.status, detail)
            if response.status >= 500 or response.status in (408, 429):
                raise Again(message)
            raise Final(message)
        sha = hashlib.sha256()
        part = dest + ".part"
        with open(part, "wb") as handle:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                sha.update(chunk)
                handle.write(chunk)
        if sha.hexdigest() != bundle:
            os.remove(part)
            raise Again("the bundle arrived damaged (sha256 %s)" % sha.hexdigest())
        os.replace(part, dest)
    except (OSError, http.client.HTTPException) as exc:
        raise Again("downloading %s failed: %s" % (path, exc))
    finally:
        conn.close()


def fetch(url, pin, bundle):
    base = os.path.join(".pveplan", "bundles")
    os.makedirs(base, mode=0o700, exist_ok=True)
    dest = os.path.join(base, bundle + ".tar.gz")
    deadline = time.monotonic() + DEADLINE
    delay = 1.0
    log("fetching bundle %s from %s" % (bundle[:12], url.netloc))
    while True:
        try:
            download(url, pin, bundle, dest)
            return
        except Again as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Final("gave up after %ds: %s" % (DEADLINE, exc))
            log("%s; retrying in %.0fs" % (exc, min(delay, left)))
            time.sleep(min(delay, left))
            delay = min(delay * 2, 15.0)


def install(bundle):
    log("installing bundle %s" % bundle[:12])
    done = subprocess.run([sys.executable, "-I", "-S", "-c", INSTALL_CODE, bundle])
    if done.returncode != 0:
        log("installing the bundle failed (exit %d)" % done.returncode)
    return done.returncode


def check_python(bundle):
    """The bundle's compiled parts need the Python it was built for: say so clearly."""
    about = os.path.join(".pveplan", "bundles", bundle, "bundle", "BUNDLE.json")
    try:
        with open(about, "rb") as handle:
            wanted = str(json.loads(handle.read().decode("utf-8")).get("python", ""))
    except (OSError, ValueError):
        return True
    here = "%d.%d" % sys.version_info[:2]
    if wanted and wanted != here:
        log("the bundle needs Python %s, but this python3 is %s" % (wanted, here))
        return False
    return True


def launch(bundle, *words):
    launcher = os.path.join(".pveplan", "bundles", bundle, "bundle", "run.py")
    log("running pveplan " + " ".join(words))
    status = subprocess.run([sys.executable, "-I", "-S", launcher, *words]).returncode
    if status != 0:
        log("pveplan %s failed (exit %d)" % (" ".join(words), status))
    return status


def main():
    root = os.environ.get("PVEPLAN_SYSROOT") or "/"
    try:
        os.chdir(os.path.join(root, "root"))
        url, pin, bundle = read_config()
        if os.path.isfile(os.path.join(".pveplan", "bundles", bundle, "READY")):
            log("bundle %s is installed" % bundle[:12])
        else:
            fetch(url, pin, bundle)
            status = install(bundle)
            if status != 0:
                return status
    except Final as exc:
        log(str(exc))
        return 2
    except OSError as exc:
        log(str(exc))
        return 2
    if not check_python(bundle):
        return 3
    status = launch(bundle, "spec", "get")
    if status == 0:
        status = launch(bundle, "config", "apply")
    if status == 0:
        log("converged")
    return status


sys.exit(main())
'''

BOOTSTRAP_CODE = _TEMPLATE.replace("@INSTALL_CODE@", repr(INSTALL_CODE)).replace(
    "@DEADLINE@", repr(DEADLINE)
)
"""Run as `python3 -I -S -c BOOTSTRAP_CODE`, no arguments, as root (cloud-init's runcmd)."""


def bootstrap_argv() -> list[str]:
    """The runcmd entry that runs the bootstrap (argv form: no shell parses it)."""
    return ["python3", "-I", "-S", "-c", BOOTSTRAP_CODE]
