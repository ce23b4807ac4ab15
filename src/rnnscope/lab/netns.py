"""A star network of emulated hosts on one machine, built from namespaces, veths, a bridge and tc.

```
  host namespace  rsl…-h0 ─┐ 10.213.0.1   each link: a veth pair, shaped to the link rate
  host namespace  rsl…-h1 ─┤ 10.213.0.2   in both directions (tbf on the host end for what
        …                  │              the host sends, tbf on the switch port for what it
  host namespace  rsl…-hN ─┘              receives); optional netem delay under each tbf
                           └── switch namespace rsl…-sw, bridge rsl…-br (one leaf switch)
```

Every veth is created inside the switch namespace and its host end moved straight into the
host namespace, so nothing ever appears in the machine's own namespace, and the addresses
(10.213.0.0/24) exist only inside the lab. `Lab` is a context manager: leaving the `with`
block in any way (an error, Ctrl-C, SIGTERM) deletes every namespace it made, and the veths
and bridge go with them.
"""

from __future__ import annotations

import json
import logging
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass

from rnnscope.costs.units import format_rate
from rnnscope.errors import UserError
from rnnscope.lab import system
from rnnscope.lab.requirements import require
from rnnscope.lab.signals import blocked_signals, unwinding_signals
from rnnscope.parallel.wire import InterfaceBytes

log = logging.getLogger(__name__)

SUBNET = "10.213.0"  # /24, assigned only to veths inside the lab's own namespaces
MAX_HOSTS = 64
# link rates tc can shape here, bits/s: tbf cannot shape much below 100 kbit (and a link that
# slow would stall any training); veth pairs move a few Gbit/s at most, above 40 Gbit tbf shapes nothing
LINK_RATE_LIMITS = (100e3, 40e9)
MTU = 1500  # bytes; an Ethernet-like link, so frame overheads are those of a real network


@dataclass(frozen=True)
class Host:
    """One emulated host: its namespace, its end of the link and its address on the lab."""

    index: int
    namespace: str
    ifname: str  # the veth end inside `namespace`; also the name for GLOO_SOCKET_IFNAME
    address: str


# The same four kernel counters that the loopback wire check reads; the lab reads them with
# `ip -s` from inside each host's namespace.
Counters = InterfaceBytes


def tbf_args(rate_bps: float) -> list[str]:
    """tc arguments of a token bucket at `rate_bps`: small burst, a queue of 100 ms.

    The burst (bucket depth) is what may pass above the rate after an idle spell, so it is
    kept small (4 frames, or 0.5 ms at the rate); the queue limit is deep enough that TCP
    keeps the link full rather than losing packets.
    """
    rate_bytes = rate_bps / 8  # bytes/s
    burst = max(4 * MTU + 64, int(rate_bytes * 0.0005))  # bytes
    limit = max(64 * 1024, int(rate_bytes * 0.100))  # bytes
    return ["tbf", "rate", f"{int(rate_bps)}bit", "burst", str(burst), "limit", str(limit)]


class Lab:
    """N hosts on one switch, every link shaped to `rate_bps` (and delayed by `delay_ms`).

    Use as `with Lab(2, 50e6) as lab:`; `build()`/`teardown()` are there for callers that
    manage the lifetime themselves (teardown is idempotent and never raises).
    """

    def __init__(self, n_hosts: int, rate_bps: float, *, delay_ms: float = 0.0):
        if not 2 <= n_hosts <= MAX_HOSTS:
            raise UserError(f"--hosts must be between 2 and {MAX_HOSTS}, got {n_hosts}")
        if delay_ms < 0:
            raise UserError(f"--delay-ms must be ≥ 0, got {delay_ms:g}")
        self.rate_bps = rate_bps
        self.delay_ms = delay_ms
        self.prefix = system.new_prefix()
        self.switch = f"{self.prefix}sw"
        self.bridge = f"{self.prefix}br"
        self.hosts = [
            Host(i, f"{self.prefix}h{i}", f"{self.prefix}h{i}", f"{SUBNET}.{i + 1}")
            for i in range(n_hosts)
        ]
        self._exit_stack: ExitStack | None = None
        self.built = False

    def __repr__(self) -> str:
        delay = f", delay {self.delay_ms:g} ms" if self.delay_ms else ""
        return f"Lab({len(self.hosts)} hosts, {format_rate(self.rate_bps)}{delay}, {self.prefix})"

    # ---- lifetime -------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self._exit_stack = ExitStack()
        self._exit_stack.enter_context(unwinding_signals())  # SIGTERM now reaches __exit__
        try:
            self.build()
        except BaseException:
            self.teardown()
            self._exit_stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.teardown()
        if self._exit_stack is not None:
            self._exit_stack.close()

    def build(self) -> None:
        """Create the switch, the hosts and their shaped links (see the module's picture)."""
        require(latency=self.delay_ms > 0)
        system.claim_prefix(self.prefix)
        log.debug("lab: building %r", self)
        self._add_namespace(self.switch)
        self._ip(self.switch, "link", "add", self.bridge, "type", "bridge")
        self._ip(self.switch, "link", "set", self.bridge, "up")
        for host in self.hosts:
            self._add_host(host)
        self.built = True

    def teardown(self) -> None:
        """Delete every namespace of this lab (stopping what runs there); never raises."""
        with blocked_signals():
            try:
                removed = system.delete_with_prefix(self.prefix)
                log.debug("lab: removed %s", removed)
            except system.LabError as exc:  # leave the rest to `rnnscope lab --cleanup`
                log.warning("lab: teardown of %s incomplete (%s); run `rnnscope lab --cleanup`",
                            self.prefix, exc)
            else:
                system.release_prefix(self.prefix)
        self.built = False

    def _add_namespace(self, namespace: str) -> None:
        system.run_cmd(["ip", "netns", "add", namespace])
        # no IPv6 chatter (router solicitations, DAD): the counters then see only our traffic
        system.run_cmd(["ip", "netns", "exec", namespace, "sysctl", "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"])
        self._ip(namespace, "link", "set", "lo", "up")

    def _add_host(self, host: Host) -> None:
        port = f"{self.prefix}p{host.index}"  # the switch's end of this host's link
        self._add_namespace(host.namespace)
        self._ip(self.switch, "link", "add", port, "mtu", str(MTU), "type", "veth",
                 "peer", "name", host.ifname, "mtu", str(MTU), "netns", host.namespace)
        self._ip(self.switch, "link", "set", port, "master", self.bridge, "up")
        self._ip(host.namespace, "addr", "add", f"{host.address}/24", "dev", host.ifname)
        self._ip(host.namespace, "link", "set", host.ifname, "up")
        self._shape(host.namespace, host.ifname)  # what the host sends
        self._shape(self.switch, port)  # what the host receives

    def _shape(self, namespace: str, ifname: str) -> None:
        tc = ["tc", "-n", namespace, "qdisc", "add", "dev", ifname]
        system.run_cmd(tc + ["root", "handle", "1:"] + tbf_args(self.rate_bps))
        if self.delay_ms > 0:
            system.run_cmd(tc + ["parent", "1:1", "handle", "10:", "netem",
                                 "delay", f"{self.delay_ms:g}ms", "limit", "100000"])

    @staticmethod
    def _ip(namespace: str, *args: str) -> None:
        system.run_cmd(["ip", "-n", namespace, *args])

    # ---- use ------------------------------------------------------------------------------

    def exec_argv(self, host: Host, argv: list[str]) -> list[str]:
        """`argv` wrapped to run inside `host`'s namespace (`ip netns exec`)."""
        return ["ip", "netns", "exec", host.namespace, *argv]

    def popen(self, host: Host, argv: list[str], **kwargs: object) -> subprocess.Popen:
        """Start `argv` inside `host`'s namespace; keyword arguments go to `subprocess.Popen`."""
        assert self.built, "build the lab before starting processes in it"
        return subprocess.Popen(self.exec_argv(host, argv), **kwargs)

    def counters(self, host: Host) -> Counters:
        """The kernel's counters of `host`'s link, read from inside its namespace."""
        out = system.run_cmd(["ip", "-j", "-s", "-n", host.namespace, "link", "show",
                              "dev", host.ifname])
        stats = json.loads(out)[0]["stats64"]
        return Counters(stats["rx"]["bytes"], stats["rx"]["packets"],
                        stats["tx"]["bytes"], stats["tx"]["packets"])

    def names(self) -> list[str]:
        """Every namespace name this lab creates (the interfaces live inside them)."""
        return [self.switch] + [h.namespace for h in self.hosts]
