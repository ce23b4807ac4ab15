"""Drop-in recurrent modules: torch.nn's constructor, call signature and state_dict, rnnscope's engine.

    rnn = rnnscope.nn.RNN(8, 128, num_layers=2, batch_first=True)   # was torch.nn.RNN(...)

One module per cell: rnn.py (Elman; torch.nn.RNN), lstm.py (torch.nn.LSTM), gru.py (torch.nn.GRU).
"""

from rnnscope.nn.gru import GRU
from rnnscope.nn.lstm import LSTM
from rnnscope.nn.rnn import RNN

__all__ = ["GRU", "LSTM", "RNN"]
