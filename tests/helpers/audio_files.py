"""Audio files in shapes real encoders write that our own writers do not."""

from __future__ import annotations

import struct

__all__ = ["flac_without_length"]


def flac_without_length(flac: bytes) -> bytes:
    """The same FLAC with STREAMINFO's total-samples field zeroed ("unknown").

    A streaming encoder writes it so (FLAC format specification, METADATA_BLOCK_STREAMINFO:
    sample rate 20 bits, channels 3, bits per sample 5, total samples 36).

    Raises:
        ValueError: ``flac`` does not start with ``fLaC`` and a STREAMINFO block.
    """
    if flac[:4] != b"fLaC" or flac[4] & 0x7F != 0:
        raise ValueError("not a FLAC file starting with STREAMINFO")
    (packed,) = struct.unpack(">Q", flac[18:26])
    packed &= ~((1 << 36) - 1)
    return flac[:18] + struct.pack(">Q", packed) + flac[26:]
