"""What the lab needs from this machine, checked up front: one line saying what is missing.

The lab needs root (to create namespaces), iproute2's `ip` and `tc`, veth pairs, a bridge and
the `tbf` qdisc (token-bucket shaping). Added latency needs the `netem` qdisc as well, which
some kernels lack; it is offered only where a probe finds it.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass

from rnnscope.errors import UserError
from rnnscope.lab.system import (LabError, claim_prefix, delete_namespace, new_prefix,
                                 release_prefix, run_cmd)


class LabUnavailable(UserError):
    """This machine cannot build the lab that was asked for (not root, no tc, no netem ...)."""


@dataclass(frozen=True)
class Capabilities:
    """What a probe found; `problem` is the first failure, in words, or "" when all worked."""

    root: bool
    ip: bool
    tc: bool
    netns: bool
    veth_bridge: bool
    tbf: bool
    netem: bool
    problem: str = ""

    def missing(self, *, latency: bool = False) -> str | None:
        """One line naming what is missing for a lab (with added latency if asked), or None."""
        if not self.root:
            return "the lab needs root (network namespaces); run it as root, e.g. with sudo"
        if not self.ip or not self.tc:
            tools = " and ".join(t for t, ok in (("ip", self.ip), ("tc", self.tc)) if not ok)
            return f"the lab needs iproute2 ({tools} not found on PATH); install the iproute2 package"
        if not (self.netns and self.veth_bridge and self.tbf):
            return f"the lab cannot shape links here: {self.problem}"
        if latency and not self.netem:
            return (
                "added latency needs the netem qdisc, which this kernel lacks "
                f"({self.problem}); leave out --delay-ms or load sch_netem"
            )
        return None


@functools.cache
def probe() -> Capabilities:
    """Try each thing the lab does, in a throwaway namespace that is always deleted.

    Cached: the kernel's abilities do not change while a process runs.
    """
    root = os.geteuid() == 0
    has_ip, has_tc = shutil.which("ip") is not None, shutil.which("tc") is not None
    if not (root and has_ip and has_tc):
        return Capabilities(root, has_ip, has_tc, False, False, False, False, "")
    prefix = new_prefix()
    namespace, veth, bridge = f"{prefix}probe", f"{prefix}a", f"{prefix}br"
    steps = [
        ("netns", ["ip", "netns", "add", namespace]),
        ("veth_bridge", ["ip", "-n", namespace, "link", "add", veth, "type", "veth",
                         "peer", "name", f"{prefix}b"]),
        ("veth_bridge", ["ip", "-n", namespace, "link", "add", bridge, "type", "bridge"]),
        ("tbf", ["tc", "-n", namespace, "qdisc", "add", "dev", veth, "root", "handle", "1:",
                 "tbf", "rate", "10mbit", "burst", "16kb", "limit", "64kb"]),
        ("netem", ["tc", "-n", namespace, "qdisc", "add", "dev", veth, "parent", "1:1",
                   "handle", "10:", "netem", "delay", "1ms"]),
    ]
    found = {"netns": False, "veth_bridge": False, "tbf": False, "netem": False}
    problem = ""
    claim_prefix(prefix)  # a probe is a lab too: `--cleanup` must not take it from under us
    try:
        for key, argv in steps:
            try:
                run_cmd(argv)
            except LabError as exc:
                found[key] = False
                problem = f"{key} probe failed: {str(exc).rsplit('): ', 1)[-1]}"
                break
            found[key] = True
    finally:
        if found["netns"]:
            delete_namespace(namespace)
        release_prefix(prefix)
    return Capabilities(root, has_ip, has_tc, problem=problem, **found)


def require(*, latency: bool = False) -> Capabilities:
    """Raise `LabUnavailable` with one line if the lab (with latency if asked) cannot run here."""
    caps = probe()
    message = caps.missing(latency=latency)
    if message is not None:
        raise LabUnavailable(message)
    return caps
