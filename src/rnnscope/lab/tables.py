"""The lab's tables: per step, per host, and the sweep (measured beside predicted).

Units: MB = 10^6 bytes, ms; "ratio" columns are measured / predicted (1.00 = the plan was right).
"""

from __future__ import annotations

from rich.table import Table

from rnnscope.lab.predict import frame_payload_bytes
from rnnscope.lab.results import LabResult
from rnnscope.costs.units import format_rate


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f}"


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f}"


def steps_table(result: LabResult) -> Table:
    """Every step: the ledger's bytes, messages and times beside the plan's prediction."""
    p, s = result.prediction, result.summary
    table = Table(title=f"{result.label}, {result.hosts} hosts: per step "
                        f"(all ranks; predicted step = measured compute "
                        f"{_ms(s['compute_seconds'])} ms + predicted comm)")
    for name in ("step", "wire MB", "pred MB", "msgs", "pred msgs", "step ms", "pred step ms",
                 "comm ms", "pred comm ms"):
        table.add_column(name, justify="right")
    for f in result.steps:
        table.add_row(str(f.step), _mb(f.wire_bytes), _mb(p.network_bytes), str(f.messages),
                      str(p.network_messages), _ms(f.step_seconds),
                      _ms(s["compute_seconds"] + p.comm_seconds), _ms(f.comm_seconds),
                      _ms(p.comm_seconds))
    return table


def hosts_table(result: LabResult) -> Table:
    """Every host over the whole run: what the ledger says it sent, what its interface counted."""
    table = Table(title=f"{result.label}: bytes sent per host over the run "
                        f"(interface payload = frames − 66 B of headers per packet)")
    for name in ("host (rank)", "ledger MB", "iface payload MB", "iface frames MB", "packets",
                 "payload / ledger"):
        table.add_column(name, justify="right")
    for rank, (sent, c) in enumerate(zip(result.ledger_sent, result.interface)):
        payload = frame_payload_bytes(c.tx_bytes, c.tx_packets)
        ratio = f"{payload / sent:.3f}" if sent else "-"
        table.add_row(str(rank), _mb(sent), _mb(payload), _mb(c.tx_bytes), str(c.tx_packets), ratio)
    s = result.summary
    table.add_row("all", _mb(s["ledger_bytes"]), _mb(s["interface_payload_bytes"]),
                  _mb(s["interface_frame_bytes"]), "", f"{s['bytes_ratio']:.3f}")
    return table


def sweep_table(results: list[LabResult]) -> Table:
    """One row per (strategy, rate): measured (predicted) step time, comm time and bytes."""
    hosts = results[0].hosts if results else 0
    table = Table(title=f"rnnscope lab, {hosts} hosts on one switch: measured (predicted); "
                        f"median of steps 2..; predicted step = measured compute + planned comm")
    for name in ("strategy", "link", "step ms", "ratio", "comm ms", "MB/step", "iface/ledger"):
        table.add_column(name, justify="right")
    for r in results:
        s = r.summary
        table.add_row(r.strategy, format_rate(r.rate_bps),
                      f"{_ms(s['step_seconds'])} ({_ms(s['predicted_step_seconds'])})",
                      f"{s['step_ratio']:.2f}",
                      f"{_ms(s['comm_seconds'])} ({_ms(s['predicted_comm_seconds'])})",
                      f"{_mb(s['wire_bytes_per_step'])} ({_mb(s['predicted_wire_bytes_per_step'])})",
                      f"{s['bytes_ratio']:.3f}")
    return table
