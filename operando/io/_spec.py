"""SPEC files: every ``#S`` scan is one spectrum (read with silx.io.specfile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ReadError
from ._messages import short_list
from ._scan import Scan, scan_from_columns


def looks_like_spec(text_head: bytes) -> bool:
    lines = text_head.splitlines()
    return any(ln.startswith(b"#S ") for ln in lines) and any(ln.startswith(b"#L ")
                                                             for ln in lines)


def read_spec_scans(path: Path, *, mu, reference, energy_column, on_error, skipped,
                    channels=None, dead_time="auto", display=None) -> list[Scan]:
    """Each ``#S`` scan of a SPEC file is one spectrum (silx.io.specfile).

    ``display`` is the name used in messages and scan names when ``path`` is a
    decompressed temporary copy.
    """
    from silx.io.specfile import SpecFile

    shown = Path(display) if display is not None else Path(path)

    try:
        spec = SpecFile(str(path))
        n = len(spec)
    except Exception as exc:  # silx raises SfError* types not exported uniformly
        raise ReadError(shown, f"not a readable SPEC file ({exc})",
                        "a SPEC file with #S and #L lines") from None
    scans = []
    for index in range(n):
        try:
            number = spec.number(index)
            labels = list(spec.labels(index))
            data = np.atleast_2d(np.asarray(spec.data(index), dtype=float))
            if data.shape[1] != len(labels) and data.shape[0] == len(labels):
                data = data.T  # silx gives (points, columns); be safe about old versions
        except Exception as exc:  # silx: malformed scan block
            problem = f"scan #{index + 1} unreadable ({exc})"
            if on_error == "raise":
                raise ReadError(shown, problem, "SPEC scans with #L labels and data") from None
            skipped.append({"file": f"{shown.name}#S{index + 1}", "reason": problem})
            continue
        file = f"{shown.name}#S{number}"
        try:
            if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] != len(labels):
                raise ReadError(file, f"scan {number} has {data.shape} values for labels "
                                      f"{short_list(labels, 8, quote=True)}", "SPEC scans with one label per column")
            lines = np.arange(1, data.shape[0] + 1)
            scan = scan_from_columns(file, file, labels, data, lines, mu=mu,
                                     reference=reference, energy_column=energy_column,
                                     channels=channels, dead_time=dead_time)
        except ReadError as exc:
            if on_error == "raise":
                raise
            skipped.append({"file": file, "reason": exc.problem})
            continue
        scan.label = f"S{number}"
        scans.append(scan)
    if not scans:
        raise ReadError(shown, "no readable scan in the SPEC file",
                        "a SPEC file with #S scans holding energy and counter columns")
    return scans

