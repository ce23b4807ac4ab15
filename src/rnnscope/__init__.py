"""rnnscope: train recurrent networks with an explicit BPTT engine and see what training does."""

__version__ = "0.1.0"
