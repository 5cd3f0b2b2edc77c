"""operando: operando XAS series -> white lines, EXAFS shells, single-atom <-> cluster transitions.

The public API is the names in ``__all__``.  They are imported on first use
(PEP 562): xraylarch, matplotlib and the fitting machinery load only when a
stage that needs them runs.  The stage packages (``operando.xanes``,
``operando.exafs``, ``operando.pipeline``, ...) are available as attributes the
same way.
"""

from importlib import import_module

from .errors import (ConfigError, DataError, NoSpectraError, OperandoError, OperandoWarning, ReadError,
                     RunFolderError)

__version__ = "0.1.0"

_EXPORTS = {
    "series": ["Series"],
    "io": ["read_series", "write_hdf5", "open_hdf5", "conditions_from_logs", "LogConditions",
           "LogSpec"],
    "xanes": ["NormalizedSeries", "normalize", "calibrate", "white_line"],
    "feffpaths": ["FeffPath", "feff_path", "load_path", "path_for_shell", "shipped_paths"],
    "exafs": ["ChiSeries", "RSeries", "ShellModel", "ShellSpec", "ShellFitResult",
              "S02Calibration", "remove_background", "fourier_transform", "fit_shells",
              "fit_shells_global", "calibrate_s02", "apply_foil",
              "cn_systematics", "result_columns", "fit_two_phase", "TwoPhaseResult"],
    "components": ["lcf", "pca", "mcr", "lcf_combinations", "LCFResult", "PCAResult",
                   "MCRResult", "CombinationResult"],
    "tracking": ["track", "Tracking", "TrackSettings", "cluster_size_from_cn", "two_phase_table"],
    "simulate": ["SeriesSpec", "simulate_series", "write_samples"],
    "config": ["load_config", "Config"],
    "pipeline": ["run", "watch", "RunResult", "RunInterrupted"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = {"io", "xanes", "components", "mixtures", "exafs", "feffpaths", "tracking",
               "simulate", "config", "pipeline", "viz", "series", "cli", "options"}

__all__ = sorted(_WHERE) + [
    "OperandoError", "ReadError", "NoSpectraError", "ConfigError", "DataError", "OperandoWarning",
    "RunFolderError",
]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'operando' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
