"""Measure a lab link with one bulk TCP transfer between two hosts (an iperf of our own).

`measure(lab, src, dst, seconds)` starts a receiver inside `dst`'s namespace and a sender
inside `src`'s (both `python -m rnnscope.lab.bulk`), and reports the payload rate the receiver
saw beside the frame bytes that the two interfaces counted. Run by hand:

    ip netns exec NS python -m rnnscope.lab.bulk receive --bind 10.213.0.2
    ip netns exec NS python -m rnnscope.lab.bulk send --to 10.213.0.2 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from rnnscope.lab.netns import Counters, Host, Lab
from rnnscope.lab.system import LabError

PORT = 5201  # inside the lab's namespaces only, so it cannot clash with the machine's ports
CHUNK = 64 * 1024  # bytes per send()


@dataclass(frozen=True)
class BulkResult:
    """One transfer: payload as the receiver saw it, frames as the interfaces counted them."""

    payload_bytes: int
    seconds: float  # first byte to end of stream, at the receiver
    src_counters: Counters  # deltas over the transfer
    dst_counters: Counters

    @property
    def goodput_bps(self) -> float:
        """Payload bits per second (what TCP delivered, headers excluded)."""
        return 8 * self.payload_bytes / self.seconds

    @property
    def wire_bps(self) -> float:
        """Frame bits per second leaving the sender's interface (headers included, as tbf counts)."""
        return 8 * self.src_counters.tx_bytes / self.seconds


def receive(bind: str, port: int, timeout_s: float) -> dict[str, float]:
    """Accept one connection, read it to the end; return bytes and first-to-last-byte seconds."""
    with socket.create_server((bind, port)) as server:
        server.settimeout(timeout_s)
        print("ready", flush=True)  # the parent starts the sender only after this line
        conn, _ = server.accept()
        with conn:
            conn.settimeout(timeout_s)
            total, first = 0, None
            while chunk := conn.recv(1 << 20):
                if first is None:
                    first = time.perf_counter()
                total += len(chunk)
            last = time.perf_counter()
    return {"bytes": total, "seconds": last - first if first is not None else 0.0}


def send(to: str, port: int, seconds: float, timeout_s: float) -> dict[str, float]:
    """Send zeros to `to:port` for `seconds`, then close; return bytes handed to the socket."""
    payload = bytes(CHUNK)
    total = 0
    with socket.create_connection((to, port), timeout=timeout_s) as conn:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.sendall(payload)
            total += len(payload)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # wait for the receiver's close: every byte has then crossed the link
    return {"bytes": total, "seconds": seconds}


def measure(lab: Lab, src: Host, dst: Host, seconds: float = 2.0) -> BulkResult:
    """Send from `src` to `dst` for `seconds` and measure what crossed the link."""
    python = [sys.executable, "-m", "rnnscope.lab.bulk"]
    timeout_s = seconds + 30.0  # a slow link still drains its queue well within this
    receiver = lab.popen(dst, python + ["receive", "--bind", dst.address,
                                        "--timeout", str(timeout_s)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if receiver.stdout.readline().strip() != "ready":
            raise LabError(f"bulk receiver in {dst.namespace} did not start: "
                               f"{receiver.stderr.read().strip()}")
        before = lab.counters(src), lab.counters(dst)
        sender = subprocess.run(
            lab.exec_argv(src, python + ["send", "--to", dst.address, "--seconds", str(seconds),
                                         "--timeout", str(timeout_s)]),
            capture_output=True, text=True, timeout=timeout_s, check=False)
        if sender.returncode != 0:
            raise LabError(f"bulk sender in {src.namespace} failed: {sender.stderr.strip()}")
        out, err = receiver.communicate(timeout=timeout_s)
        if receiver.returncode != 0:
            raise LabError(f"bulk receiver in {dst.namespace} failed: {err.strip()}")
        after = lab.counters(src), lab.counters(dst)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    received = json.loads(out)
    return BulkResult(int(received["bytes"]), float(received["seconds"]),
                      after[0] - before[0], after[1] - before[1])


def main(argv: list[str] | None = None) -> int:
    """`python -m rnnscope.lab.bulk receive|send`: one side of a transfer; prints JSON."""
    parser = argparse.ArgumentParser(prog="python -m rnnscope.lab.bulk", description=__doc__)
    sub = parser.add_subparsers(dest="side", required=True)
    rec = sub.add_parser("receive", help="accept one connection and read it to the end")
    rec.add_argument("--bind", required=True, help="address to listen on (the host's lab address)")
    snd = sub.add_parser("send", help="connect and send zeros for a while")
    snd.add_argument("--to", required=True, help="the receiver's lab address")
    snd.add_argument("--seconds", type=float, default=2.0, help="how long to send (s)")
    for side in (rec, snd):
        side.add_argument("--port", type=int, default=PORT, help="TCP port inside the lab")
        side.add_argument("--timeout", type=float, default=60.0, help="give up after this (s)")
    args = parser.parse_args(argv)
    if args.side == "receive":
        result = receive(args.bind, args.port, args.timeout)
    else:
        result = send(args.to, args.port, args.seconds, args.timeout)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
