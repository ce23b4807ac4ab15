"""A simulated step's link utilization over time, from its events (`rnnscope.plan.events`)."""

from __future__ import annotations

from rnnscope.plan.events import Event


def utilization(events: list[Event], step_s: float, bandwidth_Bps: float, link: str = "inter",
                bins: int = 400) -> tuple[list[float], list[float]]:
    """(bin centres in seconds, bytes/s over the link bandwidth) across one step."""
    width = step_s / bins
    sent = [0.0] * bins
    for e in events:
        nbytes = e.inter_bytes if link == "inter" else e.intra_bytes
        if not nbytes:
            continue
        duration = max(e.end - e.start, 1e-12)
        first, last = int(e.start / width), min(int(e.end / width), bins - 1)
        for b in range(max(first, 0), last + 1):  # spread the bytes evenly over the event
            overlap = min(e.end, (b + 1) * width) - max(e.start, b * width)
            if overlap > 0:
                sent[b] += nbytes * overlap / duration
    centres = [(b + 0.5) * width for b in range(bins)]
    return centres, [x / width / bandwidth_Bps for x in sent]
