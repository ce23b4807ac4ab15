"""Python objects on the wire without pickle: a JSON header and the raw bytes of tensors.

`Communicator.all_gather_object` sends what the ranks tell each other besides tensors (shapes at
start-up, ledger rows at the end, model pieces, idle statistics). Unpickling a peer's bytes would
run whatever code those bytes name, so a process that can reach the rendezvous could take over
every worker. This format can only ever decode to data:

    [8 bytes: header length, little endian][header: UTF-8 JSON][tensor bytes, back to back]

The header is the object itself with each tensor replaced by {"__tensor__": [dtype, shape,
offset, nbytes]}. Allowed: None, bool, int, float (NaN and inf too), str, lists and tuples
(both come back as lists), dicts with string keys, and CPU tensors of a plain dtype.
"""

from __future__ import annotations

import json
import struct

import torch

_TENSOR = "__tensor__"
_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool)}


class ObjectFormatError(ValueError):
    """Bytes that are not an encoded object, or an object this format cannot carry."""


def encode(obj: object) -> bytes:
    """The bytes of `obj` (see the module docstring for what may be in it)."""
    blobs: list[bytes] = []
    offset = 0

    def plain(value):
        nonlocal offset
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise ObjectFormatError(f"dict keys must be strings, got {list(value)[:5]}")
            if _TENSOR in value:
                raise ObjectFormatError(f"the key {_TENSOR!r} is reserved")
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, torch.Tensor):
            name = str(value.dtype).removeprefix("torch.")
            if name not in _DTYPES:
                raise ObjectFormatError(f"tensors of dtype {value.dtype} cannot be sent")
            data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() \
                if value.numel() else b""
            blobs.append(data)
            entry = {_TENSOR: [name, list(value.shape), offset, len(data)]}
            offset += len(data)
            return entry
        raise ObjectFormatError(f"a {type(value).__name__} cannot be sent between ranks "
                                "(only None, bool, int, float, str, lists, dicts, tensors)")

    header = json.dumps(plain(obj), separators=(",", ":")).encode()
    return struct.pack("<Q", len(header)) + header + b"".join(blobs)


def decode(data: bytes) -> object:
    """The object that `encode` turned into `data`; anything else raises ObjectFormatError."""
    if len(data) < 8:
        raise ObjectFormatError(f"{len(data)} bytes are too short for an encoded object")
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        raise ObjectFormatError(f"the header claims {length} bytes, only {len(data) - 8} follow")
    try:
        header = json.loads(data[8 : 8 + length].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ObjectFormatError(f"the header is not JSON ({exc})") from None
    body = memoryview(data)[8 + length :]

    def rebuild(value):
        if isinstance(value, list):
            return [rebuild(v) for v in value]
        if isinstance(value, dict):
            if set(value) == {_TENSOR}:
                return tensor(*value[_TENSOR])
            return {k: rebuild(v) for k, v in value.items()}
        return value

    def tensor(name, shape, start, nbytes) -> torch.Tensor:
        if name not in _DTYPES or not (0 <= start and start + nbytes <= len(body)):
            raise ObjectFormatError(f"a tensor entry ({name}, {shape}, {start}, {nbytes}) does "
                                    "not fit the bytes that came")
        dtype = _DTYPES[name]
        if nbytes == 0:
            return torch.empty(shape, dtype=dtype)
        flat = torch.frombuffer(bytearray(body[start : start + nbytes]), dtype=torch.uint8)
        return flat.view(dtype).reshape(shape)

    return rebuild(header)
