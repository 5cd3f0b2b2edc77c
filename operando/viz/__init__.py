"""Figures, the HTML report and the Athena export (temporary shim until the viz split lands)."""

from ..export import athena_group_names, write_athena
from ..plotting import (STATE_COLORS, plot_chir_waterfall, plot_cn, plot_fit, plot_summary, plot_white_line,
                        plot_xanes_map, save_figure)
from ..report import write_report
