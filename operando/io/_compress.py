"""Read a file's bytes, decompressing gzip, bzip2 and xz found by their magic bytes.

Any supported file may be compressed (``scan.dat.gz``, ``project.prj``,
``series.h5.xz``): the content decides, not the name.  Decompression is
streamed with a bound on the output, so a decompression bomb is refused after
at most :data:`MAX_DECOMPRESSED_BYTES` of output, or as soon as the output
outgrows the input by more than :data:`MAX_RATIO` (real data tables compress
3-20x; a bomb of zeros compresses ~1000x), with a message saying so.
"""

from __future__ import annotations

import bz2
import lzma
import stat
import zlib
from pathlib import Path

from ..errors import ReadError

#: Most bytes a compressed file may expand to (512 MiB; a 10,000-spectrum text
#: matrix is ~120 MB).  ``read_series(max_decompressed_bytes=...)`` changes it.
MAX_DECOMPRESSED_BYTES = 512 << 20
#: Largest output/input ratio accepted once the output passes :data:`RATIO_FROM`.
MAX_RATIO = 200
RATIO_FROM = 16 << 20
_CHUNK = 4 << 20

#: magic bytes -> (format name, decompressor factory)
_MAGIC = (
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(wbits=31)),
    (b"BZh", "bzip2", bz2.BZ2Decompressor),
    (b"\xfd7zXZ\x00", "xz", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
)
SUFFIXES = (".gz", ".gzip", ".bz2", ".xz")
ACCEPTED = "gzip, bzip2 or xz compressed files up to {limit} decompressed, or plain files"


def compression(head: bytes) -> str | None:
    """``"gzip"``, ``"bzip2"``, ``"xz"`` or None from a file's first bytes."""
    for magic, name, _ in _MAGIC:
        if head.startswith(magic):
            if name == "bzip2" and not (len(head) > 3 and head[3:4] in b"123456789"):
                return None  # "BZh" followed by the block size digit; else plain text
            return name
    return None


def inner_name(path) -> str:
    """The file's name without a compression suffix (``scan.dat.gz`` -> ``scan.dat``)."""
    name = Path(str(path)).name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def read_bytes(path, *, limit: int | None = None, accepted: str | None = None
               ) -> tuple[bytes, str | None]:
    """``(content, compression)`` of ``path``: decompressed when compressed.

    Parameters
    ----------
    path : path-like
    limit : int, optional
        Most bytes of decompressed output (default :data:`MAX_DECOMPRESSED_BYTES`).
    accepted : str, optional
        What the caller accepts, for the "cannot read" message.

    Raises
    ------
    ReadError
        The file cannot be read, is corrupt, or decompresses beyond the limits.
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            # a FIFO blocks forever, /dev/zero never ends, /dev/urandom fills the memory
            raise ReadError(path, "not a regular file (a FIFO, device, socket or folder)",
                            accepted)
        raw = path.read_bytes()
    except OSError as exc:
        raise ReadError(path, f"cannot read ({exc.strerror or exc})", accepted) from None
    kind = compression(raw[:8])
    if kind is None:
        return raw, None
    return decompress(path, raw, kind, limit=limit), kind


def decompress(path, raw: bytes, kind: str, *, limit: int | None = None) -> bytes:
    """``raw`` (a ``kind`` stream, possibly several members) decompressed within the limits."""
    limit = MAX_DECOMPRESSED_BYTES if limit is None else int(limit)
    factory = next(f for _, name, f in _MAGIC if name == kind)
    accepted = ACCEPTED.format(limit=_size(limit))
    out = bytearray()
    data = raw
    consumed = 0
    while data:
        engine = factory()
        try:
            data = _run(engine, data, out, limit, path, kind, accepted, consumed, len(raw))
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise ReadError(path, f"corrupt {kind} data ({exc})", accepted) from None
        consumed = len(raw) - len(data)
        if data and compression(data[:8]) != kind:
            break  # trailing bytes after the last member (gzip tolerates padding)
    return bytes(out)


def _run(engine, data: bytes, out: bytearray, limit: int, path, kind, accepted, consumed,
         total) -> bytes:
    """Feed ``data`` to one decompressor; returns the bytes after its stream's end."""
    zlib_like = hasattr(engine, "unconsumed_tail")
    pending = data
    while True:
        room = limit + 1 - len(out)
        if zlib_like:
            piece = engine.decompress(pending, min(_CHUNK, room))
            pending = engine.unconsumed_tail
        else:
            piece = engine.decompress(pending, max_length=min(_CHUNK, room))
            pending = b""
        out += piece
        _check(out, limit, path, kind, accepted, consumed, total, len(data) - len(pending))
        if engine.eof:
            return engine.unused_data
        if not piece and (not pending if zlib_like else engine.needs_input):
            raise EOFError("stream ends before its end marker (truncated file?)")


def _check(out, limit, path, kind, accepted, consumed, total, fed) -> None:
    if len(out) > limit:
        raise ReadError(path, f"{kind} content expands beyond {_size(limit)} (a decompression "
                              "bomb, or a file too large to read in memory: decompress it "
                              "and convert it to HDF5)", accepted)
    eaten = max(consumed + fed, 1)
    if len(out) > RATIO_FROM and len(out) > MAX_RATIO * min(eaten, total):
        raise ReadError(path, f"{kind} content expands more than {MAX_RATIO}x "
                              f"({_size(len(out))} from {_size(eaten)} so far): a decompression "
                              "bomb, not measured data", accepted)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
