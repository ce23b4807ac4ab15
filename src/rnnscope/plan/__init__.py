"""The planner: how long a training step takes on N workers, and which layout to use.

alphabeta (a collective's time on a link), compute (FLOPs at a device's speed), topology (flat
or nodes × GPUs), simulate (one step of a layout), events (that step's communication, event by
event), timeline (link utilization over the step), recommend (the best layout and why), table.
Bytes and messages come from `rnnscope.costs`; this machine's numbers from `rnnscope.calibrate`.
"""
