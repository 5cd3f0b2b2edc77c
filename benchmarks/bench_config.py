"""What validating a configuration costs: modules imported and wall time of
``load_config`` on the bundled demo configurations, each in a fresh interpreter.

Run ``python benchmarks/bench_config.py`` (PYTHONPATH at the checkout to measure).
Prints, never asserts.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import sys, time, json
before = set(sys.modules)
t0 = time.perf_counter()
from operando.config import load_config
cfg = load_config(sys.argv[1])
dt = time.perf_counter() - t0
new = set(sys.modules) - before
print(json.dumps({"seconds": dt, "modules": len(new),
                  "operando": sorted(m for m in new if m.startswith("operando")),
                  "heavy": sorted(m for m in ("operando.exafs", "lmfit", "larch", "scipy",
                                              "pandas", "operando.tracking") if m in new)}))
"""


def main(repeats: int = 5) -> None:
    demos = Path(__file__).resolve().parents[1] / "operando" / "data" / "demos"
    for toml in sorted(demos.glob("*.toml")):
        runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, str(toml)], check=True,
                                          capture_output=True, text=True).stdout)
                for _ in range(repeats)]
        last = runs[-1]
        print(f"{toml.name}: median {statistics.median(r['seconds'] for r in runs):.3f} s over "
              f"{repeats} fresh interpreters; {last['modules']} modules imported "
              f"({len(last['operando'])} of operando); heavy: {', '.join(last['heavy']) or 'none'}")


if __name__ == "__main__":
    main()
