"""Hostile and pathological input: bounded memory, decompression bombs, Athena projects
that try to run code.  Each case runs where it cannot hurt the machine if the bound
regresses (a subprocess with an address-space limit) and asserts the refusal."""

import gzip
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from operando.errors import ReadError
from operando.io import read_series

ROOT = Path(__file__).resolve().parents[2]


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


# ----------------------------------------------------------------- Athena projects
PT_PRJ = "series/pt_l3_hydrogen_desorption.prj"
AU_PRJ = "series/au_l3_cyanobacteria.prj"


@pytest.mark.parametrize("name", [PT_PRJ, AU_PRJ])
def test_athena_parser_equals_larch_on_real_projects(shared_data, name):
    """The data-only parser gives xraylarch's groups: same names, same order, and every
    group's energy, mu and i0 bit for bit (both projects are sorted without duplicates,
    so larch's remove_dups/argsort leave them unchanged)."""
    from larch.io import read_athena

    from operando.io._athena import group_names, parse_project
    from operando.io._compress import read_bytes

    path = shared_data / name
    raw, _ = read_bytes(path)
    groups = parse_project(path, raw.decode())
    project = read_athena(str(path), do_preedge=False)
    assert group_names(groups) == list(project.groups)
    for group, (label, theirs) in zip(groups, project.groups.items()):
        np.testing.assert_array_equal(group.arrays["x"], theirs.energy, err_msg=label)
        np.testing.assert_array_equal(group.arrays["y"], theirs.mu, err_msg=label)
        if hasattr(theirs, "i0"):
            np.testing.assert_array_equal(group.arrays["i0"], theirs.i0, err_msg=label)
        else:
            assert "i0" not in group.arrays
    series = read_series(path)
    assert len(series) == len(groups)
    assert list(series.conditions["label"]) == list(project.groups)


def _hostile_project(shared_data, tmp_path, line_no: int, replacement: str) -> Path:
    lines = (shared_data / PT_PRJ).read_text().splitlines()
    lines[line_no - 1] = replacement
    path = tmp_path / "hostile.prj"
    path.write_text("\n".join(lines) + "\n")
    return path


# The real project's line 5 is the first $old_group, line 6 its @args, line 7 its @x.
HOSTILE = [
    (5, "$old_group = open('/etc/passwd').read()[:200];", "line 5: \"open\\('/etc/passwd'\\)"),
    (7, "@x = [1.0]*(10**8);", "line 7: .*is not data"),
    (7, "@x = ones(10**8);", "line 7: 'ones\\(10\\*\\*8\\);'|line 7: .*is not data"),
    (6, "@args = " + "(" * 40 + ")" * 40 + ";", "line 6: lists nested deeper than 16"),
    # xraylarch's own examples/xafsdata/AthenaProjectFiles/danger.prj holds this line
    (5, '@journal = system("hephaestus");', "line 5: .*system"),
    (7, "@x = ('1', '2', __import__('os'));", "line 7: .*__import__"),
]


@pytest.mark.parametrize("line_no, text, message", HOSTILE)
def test_hostile_athena_projects_are_refused(shared_data, tmp_path, line_no, text, message):
    path = _hostile_project(shared_data, tmp_path, line_no, text)
    with pytest.raises(ReadError, match=f"hostile.prj: {message}") as info:
        read_series(path)
    assert "root:" not in str(info.value)  # nothing from /etc/passwd reaches the message


def test_hostile_projects_refused_fast_with_bounded_memory(shared_data, tmp_path):
    """Issue #15: '@x = [1.0]*(10**8);' took 2.6 GB and over a minute through
    xraylarch's asteval.  Here, with a 2 GB address-space limit, each hostile line is
    refused and the child's peak RSS grows by less than 100 MB."""
    paths = []
    for k, (line_no, text, _) in enumerate(HOSTILE[1:3]):
        (tmp_path / str(k)).mkdir()
        paths.append(str(_hostile_project(shared_data, tmp_path / str(k), line_no, text)))
    result = _run_limited(f"""
        import resource
        from operando.errors import ReadError
        from operando.io import read_series
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for path in {paths!r}:
            try:
                read_series(path)
                print("READ", path)
            except ReadError as exc:
                print("REFUSED", exc.problem)
        print("RSS", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("REFUSED") == 2 and "READ" not in result.stdout
    assert int(result.stdout.split("RSS")[1]) < 100e6


def test_gzip_bomb_refused_fast_with_bounded_memory(tmp_path):
    """A 1 MB gzip expanding to 1 GiB (issue #15: 3.4 GB and 15 s before an error):
    16 gzip members of 64 MiB of zeros each, as gzip itself concatenates."""
    bomb = tmp_path / "bomb.prj"
    bomb.write_bytes(gzip.compress(b"\0" * (64 << 20), 9) * 16)
    assert bomb.stat().st_size < 1.1e6
    result = _run_limited(f"""
        import resource
        from operando.errors import ReadError
        from operando.io import read_series
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            read_series({str(bomb)!r})
        except ReadError as exc:
            print("REFUSED", exc)
        print("RSS", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "REFUSED" in result.stdout and "decompression bomb" in result.stdout
    # the ratio test stops after ~16 MiB of output
    assert int(result.stdout.split("RSS")[1]) < 100e6


def test_decompressed_size_limit(tmp_path, shared_data):
    packed = tmp_path / "cu.xdi.gz"
    packed.write_bytes(gzip.compress((shared_data / "references" / "cu_foil_rt.xdi").read_bytes()))
    with pytest.raises(ReadError, match="cu.xdi.gz: gzip content expands beyond 1 KiB"):
        read_series(packed, max_decompressed_bytes=1024)
    truncated = tmp_path / "cut.xdi.gz"
    truncated.write_bytes(packed.read_bytes()[:-200])
    with pytest.raises(ReadError, match="cut.xdi.gz: corrupt gzip data.*truncated"):
        read_series(truncated)
