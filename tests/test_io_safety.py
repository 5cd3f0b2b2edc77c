"""Hostile and pathological input: bounded memory, decompression bombs, Athena projects
that try to run code.  Each case runs where it cannot hurt the machine if the bound
regresses (a subprocess with an address-space limit) and asserts the refusal."""

import gzip
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from operando.errors import ReadError
from operando.io import read_series

ROOT = Path(__file__).resolve().parents[1]


def _run_limited(code: str, limit_mb: int = 2000) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter limited to ``limit_mb`` of address space.

    The limit turns a regression (allocating rows x width, expanding a bomb) into a
    MemoryError in the child instead of swapping the test machine; the assertions
    read the child's output.
    """
    prelude = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({limit_mb} << 20, {limit_mb} << 20))
        import sys
        sys.path.insert(0, {str(ROOT)!r})
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_one_long_first_row_is_refused_with_memory_bounded_by_the_file(tmp_path):
    """Issue #15: a 1.6 MB file with one very long first row made the reader allocate
    rows x first-row width (1.7 GB; 24 GB for the file below).  The table is refused
    naming the line, and the reader's peak (tracemalloc: numpy and Python objects)
    stays within a few tens of times the file's size."""
    first = " ".join(["1.5"] * 100_000)
    rows = "\n".join(f"{8000 + i} {1 + i * 1e-3}" for i in range(100_000))
    path = tmp_path / "long.dat"
    path.write_text("# energy mu\n" + first + "\n" + rows + "\n")
    size = path.stat().st_size
    result = _run_limited(f"""
        import resource, tracemalloc
        from operando.errors import ReadError
        from operando.io._text import parse_text
        raw = open({str(path)!r}, "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        try:
            parse_text("long.dat", raw)
        except ReadError as exc:
            print("REFUSED", exc)
        print("PEAK", tracemalloc.get_traced_memory()[1])
        print("RSS", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """, limit_mb=3000)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "REFUSED" in result.stdout and "line 2 has 100000 values" in result.stdout
    peak = int(result.stdout.split("PEAK")[1].split()[0])
    rss = int(result.stdout.split("RSS")[1].split()[0])
    # rows x width would be 100,000 x 100,000 x 8 B = 80 GB (the C parsers' own
    # allocations show in the RSS, not in tracemalloc; under the 3 GB limit a
    # regression fails its allocation at ~3 GB).  The text, its lines and one row's
    # tokens are ~20x the file (1.85 MB here); 50x and 200 MB leave room for Python
    # versions and allocator slack without letting a quadratic allocation pass.
    assert peak < 50 * size, (peak, size)
    assert rss < 200e6, rss
