"""operando: operando XAS series -> white lines, EXAFS shells, single-atom <-> cluster transitions."""

from .errors import (ConfigError, DataError, FitError, OperandoError, OperandoWarning,
                     ReadError, StepError)
from .exafs import (ChiSeries, RSeries, S02Calibration, ShellFitResult, ShellModel, ShellSpec,
                    calibrate_s02, fit_shells, fit_shells_segment, fourier_transform,
                    remove_background, result_columns)
from .feffpaths import FeffPath, feff_path, load_path, path_for_shell, shipped_paths
from .io import read_series, write_hdf5
from .config import Config, load_config
from .pipeline import RunInterrupted, RunResult, run
from .series import Series
from .xanes import NormalizedSeries, calibrate, normalize, white_line
from .simulate import SeriesSpec, simulate_series, write_samples
from .tracking import Tracking, TrackSettings, cluster_size_from_cn, track

__version__ = "0.1.0"

__all__ = [
    "Series", "read_series", "write_hdf5", "FeffPath", "feff_path", "load_path", "path_for_shell", "shipped_paths",
    "ChiSeries", "RSeries", "ShellModel", "ShellSpec", "ShellFitResult", "S02Calibration",
    "remove_background", "fourier_transform", "fit_shells", "fit_shells_segment", "calibrate_s02",
    "result_columns",
    "NormalizedSeries", "normalize", "calibrate", "white_line",
    "SeriesSpec", "simulate_series", "write_samples",
    "load_config", "Config", "run", "RunResult", "RunInterrupted",
    "track", "Tracking", "TrackSettings", "cluster_size_from_cn",
    "OperandoError", "ReadError", "ConfigError", "DataError", "StepError", "FitError",
    "OperandoWarning",
]
