"""pytest puts this folder on sys.path (it holds a conftest), so tests can import testing_utils."""


def pytest_sessionstart(session):
    """Build the compiled LSTM loop (engine/lstm_kernel.py) once, before any test: on a fresh
    machine that takes 25–90 s, which would otherwise fall on whichever test first runs an LSTM,
    perhaps a worker process with its own deadline. A failed build says so in one line and the
    tests run the pure-torch loop."""
    import torch

    from rnnscope.engine import lstm_kernel

    lstm_kernel.kernel(torch.zeros(1))
