"""Test hook of the fault matrix's "checkpoint" cells (put on PYTHONPATH by `procs.start`).

With RNNSCOPE_TEST_SLOW_CHECKPOINT=<seconds>, every process of the run (the launcher and the
workers torchrun starts, which inherit the environment) waits that long before renaming a
checkpoint's temporary file into place. A checkpoint write of the tests' tiny model otherwise
lasts about a millisecond, and a poller that looks every 20 ms for the temporary file missed
every write of a whole run now and then ("the run ended before a checkpoint write"); held open,
the write is always caught, and the fault lands while it is in progress.
"""

import os

_DELAY_S = float(os.environ.get("RNNSCOPE_TEST_SLOW_CHECKPOINT") or 0)

if _DELAY_S > 0:
    import time

    _replace = os.replace

    def _slow_replace(src, dst, *args, **kwargs):
        if str(dst).endswith(".pt"):
            time.sleep(_DELAY_S)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _slow_replace
