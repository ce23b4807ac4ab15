"""What the network interface itself counted: the loopback byte counters of `/proc/net/dev`.

The ledger's wire bytes come from a formula; these counters are the kernel's own count, and
the two are compared in tests and in the benchmark. On loopback every byte is counted twice
(once sent, once received, on the same interface), so compare `tx_bytes` with the ledger's
bytes *sent* summed over ranks. The counters include TCP/IP headers (66 bytes per segment of up
to 64 KiB on loopback, about 0.1%) and ACKs.

Every process in a network namespace shares its `lo`. To count only one run's bytes, run it in a
namespace of its own (`isolated_command`): `unshare --net` gives it a private loopback whose
counters start at zero and which disappears with the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROC_NET_DEV = Path("/proc/net/dev")


@dataclass(frozen=True)
class InterfaceBytes:
    """Byte and packet counters of one interface at one moment."""

    rx_bytes: int
    rx_packets: int
    tx_bytes: int
    tx_packets: int

    def __sub__(self, other: InterfaceBytes) -> InterfaceBytes:
        return InterfaceBytes(self.rx_bytes - other.rx_bytes, self.rx_packets - other.rx_packets,
                              self.tx_bytes - other.tx_bytes, self.tx_packets - other.tx_packets)


def read_interface(name: str = "lo", path: Path = PROC_NET_DEV) -> InterfaceBytes:
    """The counters of interface `name` from /proc/net/dev (Linux only)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise OSError(f"cannot read {path} ({exc}); interface counters need Linux") from exc
    for line in lines[2:]:  # two header lines
        iface, _, numbers = line.partition(":")
        if iface.strip() == name:
            f = [int(v) for v in numbers.split()]
            # receive: bytes packets errs drop fifo frame compressed multicast; then transmit
            return InterfaceBytes(rx_bytes=f[0], rx_packets=f[1], tx_bytes=f[8], tx_packets=f[9])
    names = [ln.partition(":")[0].strip() for ln in lines[2:]]
    raise ValueError(f"interface {name!r} is not in {path}; interfaces: {', '.join(names)}")


def can_isolate() -> bool:
    """True when `unshare --net` can give a command a private loopback here."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(_unshare_prefix() + ["ip", "link", "set", "lo", "up"],
                           capture_output=True, timeout=10)
    return probe.returncode == 0


def _unshare_prefix() -> list[str]:
    # root may create a network namespace directly; others need a user namespace for it
    return ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user",
                                                           "--map-root-user", "--net"]


def isolated_command(argv: list[str], counters_file: str | Path | None = None) -> list[str]:
    """`argv` wrapped to run in a new network namespace with only `lo`, brought up first.

    With `counters_file`, a copy of the namespace's /proc/net/dev is written there once `argv`
    has exited (its exit status is kept): the bytes of this run and of nothing else. The kernel
    removes the namespace when its last process exits.
    """
    if counters_file is None:
        return _unshare_prefix() + ["sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    script = ('ip link set lo up || exit 97; out=$1; shift; "$@"; status=$?; '
              'cat /proc/net/dev > "$out"; exit $status')
    return _unshare_prefix() + ["sh", "-c", script, "sh", str(counters_file), *argv]
