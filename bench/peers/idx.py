"""The IDX reader of the Python peers (numpy_train.py, torch_train.py): one reader, so both read
the same bytes the same way. Standard library only; each peer wraps the bytes in its own array
type (numpy.frombuffer, torch.frombuffer), which is the part a user of either would write.

IDX of unsigned bytes: magic 0x00 0x00 0x08 NDIM, NDIM big-endian 32-bit sizes, then the data,
exactly as many bytes as the sizes multiply to. Anything else ends the process with a message.
"""

import sys


def read_idx(path):
    """(data, offset, shape): the whole file as a writable bytearray (so torch.frombuffer does
    not warn), where the data starts in it, and the sizes as a tuple."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        sys.exit(f"{path}: the header is cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for d in shape:
        count *= d
    if len(raw) - offset != count:
        sys.exit(f"{path}: {len(raw) - offset} bytes of data, the header says {shape}")
    return raw, offset, shape
