"""Emulated hosts on one machine: network namespaces joined by a bridge over shaped veth links.

`netns.Lab` builds the star network and always tears it down; `requirements` says up front
what this machine lacks; `bulk` measures a link with a plain TCP transfer; `run` starts one
training worker per host; `sweep` repeats that over link rates; `plot` draws the sweep.
"""
