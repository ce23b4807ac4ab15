"""rnnscope: train recurrent networks with an explicit BPTT engine and see what training does."""

__version__ = "0.1.0"


def load_run(run_dir, checkpoint: str = "best"):
    """A trained run, ready to forecast from Python: `rnnscope.load_run(RUN).predict(df)`.

    Imported on call, so that `import rnnscope` (and `rnnscope --help`) does not load torch.
    """
    from rnnscope.train.forecaster import Forecaster

    return Forecaster(run_dir, checkpoint)
