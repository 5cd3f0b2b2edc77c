"""Run configuration: a TOML file (or dict) validated once, at the boundary.

A configuration has these sections (all optional except ``[series]``)::

    [series]                      # what to read (operando.io.read_series)
    source = "scans/"             # folder, glob, file, or a list of them
    conditions = "conditions.csv" # per-file conditions table
    element = "Pt"                # absorbing element (default: from the files)
    edge = "L3"
    mu = "auto"                   # "auto", "transmission", "fluorescence", "mu" or a column
    reference = "auto"            # reference channel: "auto"/true, false, the iref column name,
                                  # or a matrix reference file (one column per step)
    format = "auto"

    [normalize]                   # operando.xanes.normalize / calibrate / white_line
    e0 = "median"                 # "median", "first", "each", "reference" or a number (eV)
    pre1 = -150.0                 # eV relative to e0 (unset: Larch defaults)
    pre2 = -30.0
    norm1 = 50.0
    norm2 = 400.0
    nnorm = 2
    nvict = 0
    calibrate = false             # align every scan on its reference-channel edge
    edge_energy = 11564.0         # calibration target (default: tabulated edge)
    wl_window = [-5.0, 15.0]      # white-line window, eV relative to e0

    [foil]                        # amplitude reduction factor S0^2
    file = "pt_foil.xdi"          # a metal foil to calibrate S0^2 on ...
    shell = "Pt-Pt"
    cn = 12
    # s02 = 0.84                  # ... or a fixed value (not both)

    [exafs]                       # operando.exafs (section present = enabled)
    shells = ["Pt-O", "Pt-Pt"]
    kmin = 3.0
    kmax = 12.0
    kweight = 2
    dk = 1.0
    window = "hanning"
    # rmin above rbkg: below rbkg the background spline has flattened chi(R), so a fit
    # window starting at rbkg inflates short ligand shells (Pt-O 4 -> 4.7 on noise-free data)
    rmin = 1.2
    rmax = 3.2
    fit_space = "r"
    rbkg = 1.0
    engine = "fast"

    [track]                       # operando.tracking thresholds (TrackSettings' keys)

    [output]
    dir = "results/run1"
    plots = ["png"]
    overwrite = false
    athena = "auto"               # athena.prj: "auto" (series up to 500 steps), true, false

    [run]
    chunk_size = "auto"           # steps per checkpointed chunk, or "auto" (see RunConfig)
    workers = 0                   # processes; 0 = one per core (default)

Relative paths resolve against the folder of the configuration file (the
current folder for a dict or TOML text).  Every unknown section or key, wrong
type and out-of-range value raises :class:`~operando.errors.ConfigError`
naming the key, the value and what is accepted.
"""

from .load import SECTIONS, load_config
from .sections import (ATHENA_AUTO_MAX_STEPS, AUTO_CHUNK_LARCH, AUTO_CHUNK_MAX, AUTO_CHUNK_MIN,
                       ComponentsConfig, Config, ExafsConfig, NormalizeConfig, OutputConfig, FoilConfig,
                       RunConfig, SeriesConfig, TrackConfig)

__all__ = [
    "Config", "SeriesConfig", "NormalizeConfig", "FoilConfig", "ExafsConfig", "ComponentsConfig",
    "TrackConfig", "OutputConfig", "RunConfig", "load_config", "SECTIONS",
    "ATHENA_AUTO_MAX_STEPS", "AUTO_CHUNK_MIN", "AUTO_CHUNK_MAX", "AUTO_CHUNK_LARCH",
]
