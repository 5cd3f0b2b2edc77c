"""Options of every analysis stage, each default stated once (:mod:`.stages`), and the
tracker's thresholds (:mod:`.tracking`).  Light: no numpy, no analysis stage."""

from .stages import (BackgroundOptions, ComponentOptions, FitOptions, FoilOptions, FTOptions,
                     NormalizeOptions, Options, WhiteLineOptions)
from .tracking import TrackSettings

__all__ = ["Options", "NormalizeOptions", "WhiteLineOptions", "FTOptions", "FitOptions",
           "BackgroundOptions", "FoilOptions", "ComponentOptions", "TrackSettings"]
