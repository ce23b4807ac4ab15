"""Weight checksums: equal weights give equal checksums; one bit of difference does not."""

import torch
from torch import nn

from rnnscope.parallel.checksum import weight_checksum


def test_checksum_is_equal_for_equal_weights_and_sees_one_bit():
    torch.manual_seed(0)
    a = nn.Linear(4, 3)
    torch.manual_seed(0)
    b = nn.Linear(4, 3)
    assert weight_checksum(a) == weight_checksum(b)
    with torch.no_grad():
        b.bias[1] = torch.nextafter(b.bias[1], torch.tensor(10.0))
    assert weight_checksum(a)[:2] != weight_checksum(b)[:2]
    assert weight_checksum(a)[2] == float(sum(p.detach().double().sum() for p in a.parameters()))
