# %% [markdown]
# # operando quickstart: a Pt L3 gas sequence in ten cells
#
# This notebook walks once through the whole `operando` chain on the bundled, **simulated**
# Pt/Al2O3 CO-oxidation series (`sample_spectra/pt_co_oxidation`, 16 scans, truth known):
#
# read -> calibrate on the foil channel -> normalise -> white line -> S0^2 from the Pt foil ->
# EXAFS shell fits (Pt-O, Pt-Pt, CN with error bars) -> states and events -> figures.
#
# Every stage is one public function of `operando` and returns a new object, so you can stop
# after any cell and look. The last cell does the same in one call (`operando.pipeline.run`,
# or `operando run config.toml` on the command line).

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

# The Pt folder also holds the foil pt_foil.xdi, which conditions.csv does not list: the reader
# skips it with an OperandoWarning (and records it in metadata["skipped"]).  That skip is
# expected here, so silence only that one message; any other warning still shows.
warnings.filterwarnings("ignore", message=r".*pt_foil\.xdi: skipped: not listed in the conditions",
                        category=op.OperandoWarning)

PT = Path("..") / "sample_spectra" / "pt_co_oxidation"

# %% [markdown]
# ## 1. Read the series
#
# One XDI file per scan (`energy i0 itrans irefer`); `conditions.csv` (keyed by file name) gives
# the gas, temperature and time of each scan and fixes the order. The folder also holds the Pt
# foil `pt_foil.xdi`, which is not a step of the series: files that `conditions.csv` does not
# list are skipped with a warning (silenced above) and named in `metadata["skipped"]`.
# `mu` is ln(i0/itrans) and the reference channel ln(itrans/irefer), both recognised from the
# column names.

# %%
series = op.read_series(PT, conditions=PT / "conditions.csv")
print("skipped:", series.metadata["skipped"])
series  # in a notebook a series shows its conditions, source and a few spectra

# %% [markdown]
# ## 2. Energy calibration on the reference channel
#
# Each scan is shifted so that the edge of its Pt foil (reference channel) sits at the tabulated
# Pt L3 energy (11564 eV); mu is re-interpolated on the common grid.

# %%
calibrated, shifts = op.calibrate(series)
pd.DataFrame({"step": calibrated.steps, "shift_eV": shifts}).T

# %% [markdown]
# ## 3. Normalisation and white line
#
# `e0="first"`: Larch's `find_e0` on the first scan, then the **same E0 for every scan**, so
# that the pre-/post-edge ranges and the white-line window are identical across the series.
# The resolved settings are kept with the result.

# %%
norm = op.normalize(calibrated, e0="first")
norm

# %%
wl = op.white_line(norm)
wl

# %% [markdown]
# ## 4. S0^2 from the Pt foil
#
# The foil spectrum is fitted with CN(Pt-Pt) = 12 fixed; the amplitude gives S0^2, which is then
# held fixed in the fits of the series.

# %%
foil = op.normalize(op.read_series(PT / "pt_foil.xdi"))
s02 = op.calibrate_s02(foil, shell="Pt-Pt", cn=12)
print(f"S0^2 = {s02.s02:.3f} +/- {s02.s02_err:.3f}")

# %% [markdown]
# ## 5. EXAFS shell fits
#
# Background removal (AUTOBK, rbkg = 1 A), then one Pt-O and one Pt-Pt shell per scan
# (k 3-12 A^-1, k^2, R 1.2-3.2 A). The CN errors come from the fit covariance.

# %%
chi = op.remove_background(norm)
model = op.ShellModel(shells=["Pt-O", "Pt-Pt"], kmin=3, kmax=12, kweight=2, rmin=1.2, rmax=3.2)
fits = op.fit_shells(chi, model, s02=s02.s02)
fits  # fits.report() gives the same as text, fits.report(step) one fit in full

# %% [markdown]
# ## 6. States and events
#
# `track` takes one table with a row per step (conditions, white line, fit results), groups
# consecutive steps under the same condition into segments, classifies each as isolated /
# cluster / particle and reports significant CN changes between segments as events.

# %%
steps = (calibrated.conditions
         .merge(norm.to_dataframe(), on="step")
         .merge(wl, on="step")
         .merge(fits.to_dataframe(), on="step"))
tracking = op.track(steps)
tracking  # tracking.report() is the same account as plain text

# %%
viz.plot_cn(tracking)

# %%
viz.plot_white_line(tracking)

# %%
tracking.events[["event", "step", "condition_before", "condition_after", "cn_before", "cn_after",
                 "delta_cn", "z", "xanes", "confidence"]]

# %% [markdown]
# ## 7. Into xarray, and a step explorer
#
# Every series and result converts to an `xarray.Dataset` with named dimensions (`step`,
# `energy`, `k`, `r`) and the conditions as coordinates, so selecting by condition and
# averaging are xarray's; `op.Series.from_xarray` reads a series back (also from a netCDF file
# written with `ds.to_netcdf`).

# %%
ds = norm.to_xarray()
h2 = ds.sel(step=ds.gas == "H2")
print(h2["norm"].sizes, "| E0 of the H2 scans:", h2["e0"].values)
chi.to_xarray()

# %% [markdown]
# `viz.step_explorer` is a slider over the steps (an ipywidgets extra: `pip install
# "operando[notebook]"`) showing mu(E), chi(k) and |chi(R)| of the step chosen with its fit.
# In a live notebook, move the slider; here the row is set from code.

# %%
explorer = viz.step_explorer(norm, chi, fits)
explorer.children[0].value = 9   # the slider: row 9, an H2 scan
explorer

# %% [markdown]
# ## 8. The same in one call
#
# `operando.pipeline.run` takes a configuration (a TOML file or the equivalent dict) and writes
# a run folder: `steps.csv`, `segments.csv`, `events.csv`, `settings.json`, PNG figures, an
# Athena project and a self-contained `report.html`. From a terminal, with the same settings in
# `config.toml`:
#
# ```toml
# [series]
# source = "../sample_spectra/pt_co_oxidation"
# pattern = "pt_co_oxidation_*.xdi"
# conditions = "../sample_spectra/pt_co_oxidation/conditions.csv"
#
# [normalize]
# e0 = "first"
# calibrate = true
#
# [foil]
# file = "../sample_spectra/pt_co_oxidation/pt_foil.xdi"
# shell = "Pt-Pt"
# cn = 12
#
# [exafs]
# shells = ["Pt-O", "Pt-Pt"]
# kmin = 3.0
# kmax = 12.0
# rmin = 1.2
# rmax = 3.2
#
# [output]
# dir = "results/pt_quickstart"
# ```
#
# ```
# operando run config.toml
# ```
#
# (`operando demo` runs both bundled sample series.) Here the run goes to a temporary folder.

# %%
import tempfile
from operando import pipeline

config = {
    "series": {"source": str(PT), "pattern": "pt_co_oxidation_*.xdi",
               "conditions": str(PT / "conditions.csv")},
    "normalize": {"e0": "first", "calibrate": True},
    "foil": {"file": str(PT / "pt_foil.xdi"), "shell": "Pt-Pt", "cn": 12},
    "exafs": {"shells": ["Pt-O", "Pt-Pt"], "kmin": 3.0, "kmax": 12.0, "rmin": 1.2, "rmax": 3.2},
    "output": {"dir": tempfile.mkdtemp(prefix="operando-quickstart-"), "overwrite": True},
}
result = pipeline.run(config, progress=False)
result.steps[["step", "gas", "wl_height", "cn_Pt-O", "cn_Pt-O_err", "cn_Pt-Pt", "cn_Pt-Pt_err", "state"]]

# %%
result  # the files written, the counts and the tracking
