"""The planner: pure functions that predict what each parallel strategy puts on the network.

collectives (bytes and messages per collective), alphabeta (their time on a link), strategies
(the traffic of a training step), compute (FLOPs at a device's speed), topology (flat or
nodes × GPUs), simulate (one step of a layout), recommend (the best layout and why),
calibrate (this machine's α, β and compute speed), units (400Gbit, 5us).
"""
