"""The check figure of conditions taken from logs: every channel over time, scans shaded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import LogConditions, read_log


def plot_condition_logs(steps: pd.DataFrame, logs: LogConditions, *, max_channels: int = 8):
    """Each numeric log channel over time with every scan's ``[time_start, time_end]`` shaded
    (scans flagged ``conditions_mixed`` in red), on the scans' clock (log time + offset_s +
    delay_s).  ``steps`` needs ``time_start``/``time_end`` (from
    :func:`operando.io.conditions_from_logs`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    panels = []
    for spec, path in zip(logs.logs, logs.files()):
        one = read_log(type(spec)(**{**spec.__dict__, "file": str(path)}))
        shift = np.timedelta64(int(round((spec.offset_s + spec.delay_s) * 1e9)), "ns")
        for column in one.channels.columns:
            values = pd.to_numeric(one.channels[column], errors="coerce").to_numpy(float)
            if np.isfinite(values).any():
                panels.append((f"{path.name}: {column}", one.times + shift, values))
    panels = panels[:max_channels] or [("no numeric channel", np.array([], "datetime64[ns]"),
                                        np.array([]))]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.8 * len(panels) + 0.8), sharex=True,
                             squeeze=False)
    start = pd.to_datetime(steps["time_start"]).to_numpy("datetime64[ns]")
    end = pd.to_datetime(steps["time_end"]).to_numpy("datetime64[ns]")
    mixed = steps["conditions_mixed"].astype(bool).to_numpy() if "conditions_mixed" in steps \
        else np.zeros(len(steps), bool)
    for ax, (label, times, values) in zip(axes[:, 0], panels):
        ax.plot(times, values, lw=0.8, color="k")
        for a, b, bad in zip(start, end, mixed):
            ax.axvspan(a, b, color="tab:red" if bad else "tab:blue", alpha=0.25 if bad else 0.12,
                       lw=0)
        ax.set_ylabel(label, fontsize=8)
    axes[0, 0].set_title("condition logs; scans shaded (red: a setpoint changed during the scan)",
                         fontsize=9)
    if len(start):  # the scans' span: a potentiostat log may start hours earlier
        pad = max((end.max() - start.min()) / 20, np.timedelta64(60, "s"))
        axes[-1, 0].set_xlim(start.min() - pad, end.max() + pad)
    axes[-1, 0].set_xlabel("time (scan clock)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
