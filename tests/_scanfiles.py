"""Series written as single-file beamline sources, for the scan-time tests.

A SPEC file (one ``#S`` scan per spectrum: ``#D`` start time in C's ctime form,
the beamline's local clock; ``#O``/``#P`` motor positions; ``#U`` user lines; an
``Epoch`` column counting seconds from ``#E``) and NeXus NXxas files (one entry
per spectrum with ``start_time``/``end_time`` and ``sample/temperature``, or one
entry of QEXAFS frames with ``data/time`` relative to its ``start`` attribute).
Counts are i0 = 1e6 and itrans = i0 exp(-mu), so mu reads back as written.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

SCAN_S = 30.0  # the acquisition's scan_time_s in operando.mixtures presets


def write_spec(path, series, start: dt.datetime, *, motors: dict, user: dict) -> None:
    """``motors``/``user``: name -> one value per step."""
    names = list(motors)
    epoch0 = int(start.timestamp())
    lines = [f"#F {path.name}", f"#E {epoch0}", f"#D {start:%a %b %d %H:%M:%S %Y}",
             "#O0 " + "  ".join(names), ""]
    n_e = len(series.energy)
    for i, t in enumerate(series.conditions["time_s"].to_numpy(float)):
        begin = start + dt.timedelta(seconds=float(t))
        lines += [f"#S {i + 1} qexafs energy {series.energy[0]:.1f} {series.energy[-1]:.1f}",
                  f"#D {begin:%a %b %d %H:%M:%S %Y}", "#T 0.01  (Seconds)",
                  "#P0 " + " ".join(f"{motors[m][i]:g}" for m in names)]
        lines += [f"#U{k} {v[i]}" for k, v in user.items()]
        lines += ["#N 4", "#L energy  Epoch  i0  itrans"]
        epoch = float(t) + np.linspace(0.0, SCAN_S, n_e)
        i0 = np.full(n_e, 1e6)
        it = i0 * np.exp(-series.mu[i])
        lines += [f"{e:.3f} {ep:.3f} {a:.10g} {b:.10g}"
                  for e, ep, a, b in zip(series.energy, epoch, i0, it)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def write_nexus(path, series, start: dt.datetime, *, frames: bool, temperature=None) -> None:
    """One NXxas entry per spectrum (``frames=False``: start_time/end_time ISO 8601,
    optional ``sample/temperature`` per step) or one entry of all spectra as QEXAFS
    frames (``data/time`` in s from its ``start`` attribute)."""
    import h5py

    seconds = series.conditions["time_s"].to_numpy(float)
    with h5py.File(path, "w") as h5:
        def entry(name, mu):
            group = h5.create_group(name)
            group.attrs["NX_class"] = "NXentry"
            group["definition"] = "NXxas"
            data = group.create_group("data")
            data.attrs["NX_class"] = "NXdata"
            data["energy"] = series.energy
            data["mu"] = mu
            group["sample/element"] = series.element
            group["edge"] = series.edge
            return group

        if frames:
            group = entry("entry1", series.mu)
            time = group["data"].create_dataset("time", data=seconds)
            time.attrs["units"] = "s"
            time.attrs["start"] = start.isoformat()
            return
        for i, t in enumerate(seconds):
            group = entry(f"entry{i + 1}", series.mu[i])
            begin = start + dt.timedelta(seconds=float(t))
            group["start_time"] = begin.isoformat()
            group["end_time"] = (begin + dt.timedelta(seconds=SCAN_S)).isoformat()
            if temperature is not None:
                group["sample/temperature"] = float(temperature[i])
