# %% [markdown]
# # Au(III) reduced to metallic Au by cyanobacteria: a real Au L3 series from XANES alone
#
# **Measured** data: an Athena project (xraylarch examples, `cyanobacteria.prj`) with Au L3
# XANES of Au(III) chloride taken up by cyanobacteria, measured from 12 hours to 30 days
# (groups `d_0_12` ... `d_720`, hours), plus nine Au standards measured the same way. It is
# the classic isolated-ion -> metal-particle series, and xraylarch's own PCA example runs on it,
# so every number here can be compared with Larch on the same input.
#
# What this notebook shows, without any EXAFS fit:
# 1. PCA of the time steps: how many species are there? (two)
# 2. target tests of the standards: which of them belong to the series?
# 3. LCF of every time step against Au foil, Au(III) chloride and Au thiosulphate, checked
#    against `larch.math.lincombo_fit`: the Au(0) fraction rises with time;
# 4. the tracker, from XANES alone, reports the reduction.
#
# The data live outside the repository, in `../../shared/data` relative to this folder.

# %%
# %matplotlib inline
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import operando as op
from operando import viz

matplotlib.rcParams["figure.dpi"] = 80          # modest figures: the notebooks stay small
pd.set_option("display.width", 140)
pd.set_option("display.max_columns", 30)
pd.set_option("display.precision", 4)
print("operando", op.__version__)

DATA = Path("..") / ".." / "shared" / "data"
PRJ = DATA / "series" / "au_l3_cyanobacteria.prj"
if not PRJ.is_file():
    raise FileNotFoundError(f"The real data are not available: expected {PRJ.resolve()}; this "
                            "notebook needs the shared data folder next to the repository.")

# %% [markdown]
# ## Read the project, split time steps from standards
#
# `read_series` reads every group of the (gzipped) Athena project onto one energy grid; the
# group name is the `label` column. The time steps are the groups `d_<hours>`; their time in
# hours becomes a condition column. In a notebook the series shows itself as a table with a
# small chart of a few spectra.

# %%
project = op.read_series(PRJ)
labels = list(project.conditions["label"])
times = [i for i, name in enumerate(labels) if name.startswith("d_")]
series = project.take(times)
hours = [float(name[2:].replace("_", ".")) for name in series.conditions["label"]]
series = series.replace(conditions=series.conditions.assign(time_h=hours))
standards = {name: project.take([labels.index(name)]) for name in
             ("Au_foil", "Au3_Cl_aq", "Au_thiosulphate_aq", "Au_hydroxide", "Au_sulphide")}
series

# %% [markdown]
# ## Normalise as Larch's PCA example does
#
# `pre1, pre2 = -150, -30` eV, a straight post-edge line from +150 to +850 eV
# (`nnorm = 1`), E0 per scan. The XANES map shows the edge region (-30..+70 eV around E0 by
# default) and the difference spectra every step minus the first (12 h): the white line at
# 11921 eV falls and the features of metallic Au near 11945 and 11970 eV grow.

# %%
NORM = dict(pre1=-150, pre2=-30, nnorm=1, norm1=150, norm2=850)
norm = op.normalize(series, e0="each", **NORM)
norm

# %%
viz.plot_xanes_difference(norm.energy, norm.norm, steps=series.steps, e0=norm.e0)

# %% [markdown]
# ## PCA: how many species?
#
# PCA of the eight time steps over -20..+80 eV around E0. Malinowski's F-test keeps the
# components that stand above the noise; the indicator function IND has its minimum one
# further. Two components carry 99.997 % of the variance: a two-species mixture, as a
# reduction Au(III) -> Au(0) with no long-lived intermediate would give.
#
# Target transformation tests whether each standard lies in the span of those components
# (Malinowski's SPOIL: below 3 acceptable, above 6 rejected): a standard that fails is not
# one of the species of the series, whatever an LCF with it would say.

# %%
p = op.pca(norm, targets={name: s for name, s in standards.items()})
print(p.report())
viz.plot_pca(p)

# %% [markdown]
# Two species, and of the five standards only the Au foil is accepted outright (SPOIL ~2);
# Au(III) chloride and Au sulphide are "moderate" (SPOIL 4.8 and 5.9), Au(I) thiosulphate
# and Au(III) hydroxide are rejected (above 6). So the series is metallic Au growing at the
# expense of one oxidised Au species that resembles, but is not exactly, Au(III) chloride in
# solution (Au bound to the cells). The LCF below keeps the three standards Larch's example
# and most papers use; read the thiosulphate weight as "oxidised Au not described by the
# chloride", not as evidence of a thiosulphate complex.
#
# ## LCF against three standards, checked against Larch
#
# Au foil (Au(0)), Au(III) chloride in solution and Au(I) thiosulphate, weights in [0, 1]
# summing to one, fit range -20..+80 eV around each step's E0. The standards are normalised
# with the series' own settings. The result shows itself as a table of fractions with their
# errors and a chart of the fractions against the step.

# %%
refs = {name: standards[name] for name in ("Au_foil", "Au3_Cl_aq", "Au_thiosulphate_aq")}
fit = op.lcf(norm, refs)
fit

# %%
from larch import Group
from larch.math import lincombo_fit

worst = 0.0
for i in range(len(norm)):
    comps = [Group(energy=norm.energy, norm=fit._basis[j], filename=n) for j, n in enumerate(fit.names)]
    out = lincombo_fit(Group(energy=norm.energy, norm=norm.norm[i]), comps, minvals=[0] * 3,
                       maxvals=[1] * 3, xmin=fit.xmin[i], xmax=fit.xmax[i], sum_to_one=True)
    worst = max(worst, max(abs(fit.weights[i, j] - out.weights[n]) for j, n in enumerate(fit.names)))
print(f"largest weight difference to larch.math.lincombo_fit over all steps: {worst:.1e}")

# %% [markdown]
# The weights agree with Larch's to well within 0.005. The fit of the last step (30 days),
# the most metallic one, with its weighted components and residual:

# %%
viz.plot_lcf_fit(fit, 7)

# %% [markdown]
# ## The Au(0) fraction rises with time
#
# Against time (log scale: the steps span 12 hours to 30 days). The foil fraction rises
# from 0 at 12 h to about 0.58 after 30 days, mostly at the expense of the Au(III) chloride;
# d_33 lies a little below d_20, within about two error bars.

# %%
from scipy.stats import spearmanr

table = fit.to_dataframe().assign(time_h=hours)
fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
for name in fit.names:
    ax.errorbar(table["time_h"], table[f"frac_{name}"], yerr=table[f"frac_{name}_err"], fmt="o-",
                ms=4, capsize=2, label=name)
ax.set_xscale("log")
ax.set_xlabel("Time (h)")
ax.set_ylabel("Fraction")
ax.legend(fontsize=8)
plt.show()
rho = spearmanr(table["time_h"], table["frac_Au_foil"]).statistic
print(f"Au(0) fraction {table.frac_Au_foil.iloc[0]:.2f} -> {table.frac_Au_foil.iloc[-1]:.2f}; "
      f"rank correlation with time {rho:.2f}")

# %% [markdown]
# ## Tracking from XANES alone
#
# `track` takes the steps table (conditions, white line, edge, fractions) and uses whatever
# evidence it holds. The time is not a condition (every scan would be its own), so the series
# is one stretch, tested for a trend in time: each channel's change over the stretch with its
# uncertainty, the strongest channel after a Bonferroni correction over the channels. The
# metallic fraction is named explicitly (`metal_fraction`).

# %%
steps = (series.conditions.merge(norm.to_dataframe(), on="step").merge(op.white_line(norm), on="step")
         .merge(fit.to_dataframe(), on="step"))
tracking = op.track(steps, settings={"metal_fraction": "Au_foil"})
tracking

# %%
tracking.events[["event", "origin", "strongest", "z", "delta_frac_metal", "z_frac_metal", "confidence",
                 "evidence"]]

# %% [markdown]
# The event is a **reduction** found as a trend over the whole series, carried by the Au(0)
# fraction, with the Au(III) fraction falling in step. With only eight unevenly spaced scans
# and no repeats the confidence is modest: the scatter between neighbouring scans sets the
# error. `viz.plot_fractions` draws the fractions per step with the event:

# %%
viz.plot_fractions(tracking)

# %% [markdown]
# ## Into xarray
#
# `to_xarray()` hands the normalised series to xarray with the conditions as coordinates
# (`time_h`, `label`), so selecting and plotting by condition is xarray's; `Series.from_xarray`
# reads a series back.

# %%
ds = norm.to_xarray()
late = ds.sel(step=ds.time_h > 100)
print(dict(late["norm"].sizes), list(late["label"].values))
back = op.Series.from_xarray(ds)
print(back, np.array_equal(back.mu, series.mu))
