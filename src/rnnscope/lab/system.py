"""The lab's only door to the kernel: `ip`/`tc` commands, its name prefix, and leftover cleanup.

Every name the lab creates (namespaces, veths, bridges) starts with `rsl` + 6 hex digits + `-`,
for example `rsl3f9a01-h0`; `cleanup_leftovers` removes only names of that form, so it never
touches an interface or namespace that the lab did not make.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX_RE = re.compile(r"^rsl[0-9a-f]{6}-")
COMMAND_TIMEOUT_S = 20.0  # one ip/tc call; they take milliseconds when the kernel is healthy
# one file per live lab, named by its prefix, holding the owner's pid: cleanup spares live labs
OWNER_DIR = Path("/run/rnnscope-lab")


class LabError(RuntimeError):
    """An `ip`/`tc` command failed while building, probing or tearing down the lab."""


def new_prefix() -> str:
    """A fresh prefix such as `rsl3f9a01-`, unique to one lab (24 random bits)."""
    return f"rsl{secrets.token_hex(3)}-"


def claim_prefix(prefix: str) -> None:
    """Record that this process owns `prefix`, so `cleanup_leftovers` leaves its lab alone."""
    for attempt in range(3):  # another lab's release may remove the empty folder meanwhile
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        try:
            (OWNER_DIR / prefix).write_text(f"{os.getpid()}\n")
            return
        except FileNotFoundError:
            if attempt == 2:
                raise


def release_prefix(prefix: str) -> None:
    """Forget the owner record of `prefix` (after its teardown); the last one removes the folder."""
    (OWNER_DIR / prefix).unlink(missing_ok=True)
    try:
        OWNER_DIR.rmdir()  # only when empty: the machine is left as it was
    except OSError:
        pass


def owner_alive(prefix: str) -> bool:
    """Whether the process that built the lab `prefix` still runs."""
    try:
        pid = int((OWNER_DIR / prefix).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def run_cmd(argv: list[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run one command (no shell), return its stdout; raise `LabError` naming it if it fails."""
    log.debug("lab: %s", " ".join(argv))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is not installed (needed for: {' '.join(argv)})") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:g} s") from exc
    if check and done.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def list_namespaces() -> list[str]:
    """Names of all network namespaces that `ip netns` knows (`ip netns list`)."""
    names = []
    for line in run_cmd(["ip", "netns", "list"]).splitlines():
        if line.strip():
            names.append(line.split()[0])  # "name (id: 3)" -> "name"
    return names


def list_root_links() -> list[str]:
    """Interface names in this process's own namespace (`ip -o link`), without the @peer part."""
    names = []
    for line in run_cmd(["ip", "-o", "link", "show"]).splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def namespace_pids(namespace: str) -> list[int]:
    """Processes running inside `namespace` (`ip netns pids`)."""
    out = run_cmd(["ip", "netns", "pids", namespace], check=False)
    return [int(tok) for tok in out.split() if tok.isdigit()]


def kill_namespace_processes(namespace: str, grace_s: float = 3.0) -> None:
    """SIGTERM every process inside `namespace` (each one the lab started there), then SIGKILL."""
    pids = namespace_pids(namespace)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = namespace_pids(namespace)
        if not pids:
            return
    log.warning("lab: processes %s in %s survived SIGKILL", pids, namespace)


def delete_namespace(namespace: str) -> None:
    """Stop what runs in `namespace`, then delete it; its veth ends (and their peers) go with it."""
    kill_namespace_processes(namespace)
    run_cmd(["ip", "netns", "delete", namespace], check=False)


def delete_with_prefix(prefix: str) -> list[str]:
    """Delete every namespace and root-namespace link whose name starts with `prefix`.

    Returns the names removed. Used by a lab's own teardown (its exact prefix) and by
    `cleanup_leftovers` (each leftover prefix in turn).
    """
    assert PREFIX_RE.match(prefix), prefix  # never a prefix that could match foreign names
    removed = []
    for namespace in list_namespaces():
        if namespace.startswith(prefix):
            delete_namespace(namespace)
            removed.append(namespace)
    # the lab creates its veths inside its namespaces; this only catches a half-moved one
    for link in list_root_links():
        if link.startswith(prefix):
            run_cmd(["ip", "link", "delete", link], check=False)
            removed.append(link)
    return removed


def leftovers() -> list[str]:
    """Namespaces and root-namespace links that carry the lab's prefix (from crashed runs)."""
    names = [n for n in list_namespaces() if PREFIX_RE.match(n)]
    return names + [n for n in list_root_links() if PREFIX_RE.match(n)]


def cleanup_leftovers(*, include_live: bool = False) -> tuple[list[str], list[str]]:
    """Remove what crashed labs left behind (`rnnscope lab --cleanup`).

    A lab whose owner process still runs is spared unless `include_live`.
    Returns (names removed, prefixes spared because their owner is alive).
    """
    removed: list[str] = []
    spared: list[str] = []
    for prefix in sorted({PREFIX_RE.match(name).group(0) for name in leftovers()}):
        if owner_alive(prefix) and not include_live:
            spared.append(prefix)
            continue
        removed += delete_with_prefix(prefix)
        release_prefix(prefix)
    return removed, spared
