"""The events of one simulated step on the busiest worker's links (what `timeline` draws from).

The events replay `simulate`'s model: per time step compute then (hidden split) a collective;
pipeline chunks leaving a stage at the slowest stage's pace; gradient buckets as scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnscope.costs.layout import chunk_count, split_layers
from rnnscope.plan.simulate import PlanInputs, StepPlan, layer_seconds, wave


@dataclass(frozen=True)
class Event:
    """Bytes one worker sends between `start` and `end` (seconds from the step's start)."""

    start: float
    end: float
    inter_bytes: int
    intra_bytes: int
    tag: str


def step_events(inputs: PlanInputs, plan: StepPlan) -> list[Event]:
    """The communication events of one step on the busiest worker, in time order."""
    layout, s = plan.layout, inputs.shape
    T, L = s.seq_len, s.layers
    items = {item.tag: item for item in plan.items}
    per_step = layer_seconds(inputs, plan.batch_per_replica, layout.hidden_split, layout.world)
    events: list[Event] = []
    if layout.pipeline == 1:
        clock = 0.0
        for phase, tag in ((0, "hidden_state"), (1, "hidden_grad")):
            layers = range(L) if phase == 0 else reversed(range(L))
            for l in layers:
                for _ in range(T):
                    clock += per_step[l][phase]
                    if tag in items:
                        cost = items[tag].cost
                        events.append(Event(clock, clock + cost.seconds, cost.inter_bytes,
                                            cost.intra_bytes, tag))
                        clock += cost.seconds
                if phase == 1 and l and "input_grad" in items:
                    cost = items["input_grad"].cost
                    events.append(Event(clock, clock + cost.seconds, cost.inter_bytes,
                                        cost.intra_bytes, "input_grad"))
                    clock += cost.seconds
        backward_start = sum(T * (per_step[l][0] + (items["hidden_state"].cost.seconds
                                                    if "hidden_state" in items else 0.0))
                             for l in range(L))
    else:
        backward_start = _pipeline_events(inputs, plan, per_step, items, events)
    if "gradients" in items:
        schedule = items["gradients"].schedule
        # pipeline: the worst stage's buckets, ending with the step
        offset = backward_start if layout.pipeline == 1 else plan.step_s - schedule[-1][1]
        for start, end, inter, intra in schedule:
            events.append(Event(offset + start, offset + end, inter, intra, "gradients"))
    return sorted(events, key=lambda e: e.start)


def _pipeline_events(inputs: PlanInputs, plan: StepPlan, per_step, items, events) -> float:
    """Sends of stage 1 (an inner stage, the busiest), or of both stages when there are two;
    returns when the backward starts."""
    layout, s = plan.layout, inputs.shape
    chunk = min(inputs.chunk, s.seq_len)
    chunks = chunk_count(s.seq_len, chunk)
    stages = split_layers(s.layers, layout.pipeline)
    F = [chunk * sum(per_step[l][0] for l in st) for st in stages]
    G = [chunk * sum(per_step[l][1] for l in st) for st in stages]
    sends = sorted((i for i in plan.items if i.tag == "activations"),
                   key=lambda i: -i.payload_bytes)
    send = sends[0].cost  # a full chunk; the last chunk may be shorter

    def cost_of(i: int):
        return sends[-1].cost if i == chunks - 1 else send

    p = layout.pipeline
    forward = wave(F, send.seconds, chunks)
    pace_f, pace_g = max(F + [send.seconds]), max(G + [send.seconds])
    j = 1 if p > 2 else 0  # stage 1 sends both ways; with 2 stages, each stage one way
    start = sum(F[:j + 1]) + j * send.seconds
    for i in range(chunks):  # activations forward to stage j+1
        t, c = start + i * pace_f, cost_of(i)
        events.append(Event(t, t + c.seconds, c.inter_bytes, c.intra_bytes, "activations"))
    if "output" in items:  # ŷ broadcast from the last stage
        cast = items["output"].cost
        events.append(Event(forward, forward + cast.seconds, cast.inter_bytes, cast.intra_bytes,
                            "output"))
        forward += cast.seconds
    jb = j if p > 2 else 1
    start = forward + sum(G[jb:]) + (p - 1 - jb) * send.seconds
    for i in range(chunks):  # gradients back to stage jb−1
        t, c = start + i * pace_g, cost_of(i)
        events.append(Event(t, t + c.seconds, c.inter_bytes, c.intra_bytes, "activation_grad"))
    return forward
