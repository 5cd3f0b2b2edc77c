"""Streamed sources in tests: the same run read whole into memory (the reference), and
the blocks of rows a streamed run reads."""

from __future__ import annotations

import pytest

from operando import pipeline
from operando.io import LazySeries
from operando.pipeline import source as source_module


def run_in_memory(config):
    """``pipeline.run(config)`` with streaming turned off: the source read whole."""
    mp = pytest.MonkeyPatch()
    mp.setattr(source_module, "_open_streamed", lambda read: None)
    try:
        return pipeline.run(config, progress=False)
    finally:
        mp.undo()


def count_rows_read(monkeypatch) -> list[int]:
    """From now on, the size of every block of rows a streamed source reads
    (``LazySeries.read_rows``), in order."""
    calls: list[int] = []
    original = LazySeries.read_rows

    def counting(self, start, stop):
        calls.append(stop - start)
        return original(self, start, stop)

    monkeypatch.setattr(LazySeries, "read_rows", counting)
    return calls
