"""Drop-in recurrent modules: torch.nn's constructor, call signature and state_dict, rnnscope's engine.

    rnn = rnnscope.nn.RNN(8, 128, num_layers=2, batch_first=True)   # was torch.nn.RNN(...)

One module per cell: rnn.py (Elman; torch.nn.RNN), and the gated cells beside it.
"""

from rnnscope.nn.rnn import RNN

__all__ = ["RNN"]
