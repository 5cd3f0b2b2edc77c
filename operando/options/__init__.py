"""Options of every analysis stage, each default stated once (:mod:`.stages`), and the
tracker's thresholds (:mod:`.tracking`).  Light: no analysis stage."""

from .stages import (ENGINES, BackgroundOptions, ComponentOptions, FitOptions, FoilOptions,
                     FTOptions, NormalizeOptions, Options, WhiteLineOptions)
from .tracking import TrackSettings

__all__ = ["Options", "ENGINES", "NormalizeOptions", "WhiteLineOptions", "FTOptions", "FitOptions",
           "BackgroundOptions", "FoilOptions", "ComponentOptions", "TrackSettings"]
