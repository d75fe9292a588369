"""Bounded decompression of the Kafka record batches our consumers read.

kafka-python inflates a compressed record batch whole before a single record is seen: a
0.3 MB gzip message that inflates to 300 MB took enrich from 456 MB to 1,135 MB before the
4 MiB message check ran (issue 16). `install` replaces the batch's decompression with one
that refuses a batch over `MAX_COMPRESSED_BATCH_BYTES` compressed and stops inflating at
`MAX_INFLATED_BATCH_BYTES`, never holding more than that.

A batch refused so (or one that does not decompress at all: corrupt data, a codec not
installed here) is not an exception from ``poll``: the consumer would stop at that offset
forever. Its records come out in their place, at their offsets, with no key or value and
a ``newswatch.batch_error`` header saying why; the run loop dead-letters them
(`batch_error`) and the stream goes on.

This reaches into kafka-python's `DefaultRecordBatch` (message format v2, the only one
Kafka 4 brokers store): there is no public hook for it. `install` checks the attributes
it relies on, so a kafka-python that changed them fails loudly at start-up.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

from kafka.record import default_records
from kafka.record.util import encode_varint

from schemas.messages import MAX_MESSAGE_BYTES

# A batch holds one message of up to MAX_MESSAGE_BYTES, or several small ones: a producer
# batches by size (16 KB by default), so four times the largest message is ample.
MAX_COMPRESSED_BATCH_BYTES = MAX_MESSAGE_BYTES
MAX_INFLATED_BATCH_BYTES = 4 * MAX_MESSAGE_BYTES
ERROR_HEADER = "newswatch.batch_error"

_installed = threading.Lock()
_done = False


def install() -> None:
    """Bound the decompression of every record batch this process reads. Idempotent."""
    global _done
    with _installed:
        if _done:
            return
        batch = default_records.DefaultRecordBatch
        for name in ("_maybe_uncompress", "records_count", "compression_type", "last_offset",
                     "last_offset_delta", "CODEC_GZIP", "_assert_has_codec"):
            if not hasattr(batch, name):
                raise RuntimeError(f"kafka-python's DefaultRecordBatch has no {name}: "
                                   "newswatch.kafka_inflate needs updating")
        batch._maybe_uncompress = _bounded_uncompress
        _done = True


def batch_error(record: Any) -> str | None:
    """Why ``record`` stands for a refused batch (see the module docstring), or None."""
    for key, value in record.headers or ():
        if key == ERROR_HEADER:
            return bytes(value or b"").decode("utf-8", "replace")
    return None


def _bounded_uncompress(batch: Any) -> None:
    if batch._decompressed:
        return
    codec = batch.compression_type
    if codec != batch.CODEC_NONE:
        data = memoryview(batch._buffer)[batch._pos:]
        try:
            inflated = inflate(codec, data, batch)
        except Exception as exc:  # any codec failure makes the batch poison, not a hang
            inflated = _error_records(batch, f"offsets {batch.base_offset}.."
                                             f"{batch.last_offset}: {exc}")
        batch._buffer = bytearray(inflated)
        batch._pos = 0
    batch._decompressed = True


def inflate(codec: int, data: memoryview, batch: Any,
            max_out: int = MAX_INFLATED_BATCH_BYTES) -> bytes:
    """The batch's records inflated, or `ValueError` past the limits (before inflating)."""
    if len(data) > MAX_COMPRESSED_BATCH_BYTES:
        raise ValueError(f"compressed record batch of {len(data)} bytes is over the "
                         f"{MAX_COMPRESSED_BATCH_BYTES} bytes a Newswatch batch may have")
    if codec == batch.CODEC_GZIP:
        return _inflate_gzip(bytes(data), max_out)
    if codec == batch.CODEC_LZ4:
        return _inflate_lz4(bytes(data), max_out)
    # snappy and zstd (no Newswatch producer uses them): kafka-python's own decoders,
    # size-checked after the fact; without the codec installed they raise, so poison.
    batch._assert_has_codec(codec)
    decode = {batch.CODEC_SNAPPY: default_records.snappy_decode,
              batch.CODEC_ZSTD: default_records.zstd_decode}[codec]
    out: bytes = decode(bytes(data))
    return _checked(out, max_out)


def _inflate_gzip(data: bytes, max_out: int) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while data:  # one gzip member, or several concatenated
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        piece = inflater.decompress(data, max_out + 1 - size)
        size += len(piece)
        if size > max_out or inflater.unconsumed_tail:
            raise ValueError(_too_big(max_out))
        if not inflater.eof:
            raise ValueError("truncated gzip record batch")
        pieces.append(piece)
        data = inflater.unused_data
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _inflate_lz4(data: bytes, max_out: int) -> bytes:
    import lz4.frame  # type: ignore[import-untyped]  # kafka-python's lz4 codec

    inflater = lz4.frame.LZ4FrameDecompressor()
    out: bytes = inflater.decompress(data, max_length=max_out + 1)
    if len(out) > max_out or (not inflater.needs_input and not inflater.eof):
        raise ValueError(_too_big(max_out))
    return out


def _checked(out: bytes, max_out: int) -> bytes:
    if len(out) > max_out:
        raise ValueError(_too_big(max_out))
    return out


def _too_big(max_out: int) -> str:
    return (f"record batch inflates to more than {max_out} bytes (a decompression bomb?); "
            "inflating stopped there")


def _error_records(batch: Any, reason: str) -> bytes:
    """``records_count`` records with no key or value, each carrying ``reason``."""
    count = batch.records_count
    last = batch.last_offset_delta
    out = bytearray()
    key = ERROR_HEADER.encode()
    value = reason.encode("utf-8", "replace")[:2000]
    for i in range(count):
        body = bytearray()
        encode_varint(0, body.append)                             # attributes
        encode_varint(0, body.append)                             # timestamp delta
        encode_varint(last if i == count - 1 else min(i, last), body.append)  # offset delta
        encode_varint(-1, body.append)                            # key: null
        encode_varint(-1, body.append)                            # value: null
        encode_varint(1, body.append)                             # one header
        encode_varint(len(key), body.append)
        body += key
        encode_varint(len(value), body.append)
        body += value
        encode_varint(len(body), out.append)
        out += body
    return bytes(out)
