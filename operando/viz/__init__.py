"""Figures, the HTML report and the Athena export of a processed series."""

from .athena import athena_group_names, write_athena
from .figures import (EVENT_MARKERS, STATE_COLORS, plot_chir_waterfall, plot_cn, plot_fit,
                      plot_summary, plot_white_line, plot_xanes_map, save_figure, write_png)
from .report import write_report
