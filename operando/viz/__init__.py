"""Figures, the HTML report and the Athena export of a processed series.

=====================  ==========================================================
:mod:`.two_phase`      :func:`plot_two_phase`: cluster fraction, own CN and size
:mod:`.trends`         :func:`plot_cn`, :func:`plot_white_line`,
                       :func:`plot_fit_parameters`: a tracked series versus
                       condition, with its events; every step drawn (poor and
                       failed fits hollow grey, outliers ringed)
:mod:`.components`     :func:`plot_fractions`, :func:`plot_lcf_fit`,
                       :func:`plot_pca`, :func:`plot_mcr`
:mod:`.spectra`        :func:`plot_xanes_map` (edge region by default),
                       :func:`plot_xanes_difference`, :func:`plot_chir_waterfall`,
                       :func:`plot_fit`
:mod:`.wavelet`        :func:`plot_wavelet`: k-R maps of the wavelet transform
:mod:`.explorer`       :func:`step_explorer`: an ipywidgets slider over the steps
:mod:`.summary`        :func:`plot_summary`: the 2 x 2 overview of a run
:mod:`.save`           :func:`save_figure`: PNG / SVG / PDF written atomically
:mod:`.report`         :func:`write_report`: one self-contained ``report.html``
:mod:`.athena`         :func:`write_athena`, :func:`athena_group_names`: an Athena
                       project (.prj) by Larch's own writer
:mod:`._conditions`    the condition axis (potential or step bands) and event names
:mod:`._marks`         steps, segment estimates and events on the condition axis
                       (shared by the trend and fraction figures)
:mod:`._layout`        colours, fixed margins, tick locators, one-artist helpers
=====================  ==========================================================

Every plot function returns a :class:`matplotlib.figure.Figure` (or draws into
a given ``ax`` and returns its figure) and never shows it.  Figures are built
with the object-oriented API (no pyplot state), so they are safe in scripts,
threads and the Agg backend.

The condition axis follows the experiment: when the only varying condition is
the potential, the x axis is the potential in V vs RHE (text labels such as
``OCP`` sit on extra ticks to the right); otherwise it is the step number with
shaded bands labelled by condition (gas sequences keep their order, a gas that
returns gets the same colour).

Every file is written through :mod:`operando._util.files` (temporary file,
fsync, permissions of a plain ``open()``, rename), so a reader never sees half
a file and a run folder recognises the temporaries of a killed writer.
"""

from ._layout import EVENT_MARKERS, STATE_COLORS
from .athena import athena_group_names, write_athena
from .components import plot_fractions, plot_lcf_fit, plot_mcr, plot_pca
from .explorer import step_explorer
from .logs import plot_condition_logs
from .report import write_report
from .save import save_figure
from .spectra import EDGE_WINDOW, plot_chir_waterfall, plot_fit, plot_xanes_difference, plot_xanes_map
from .summary import plot_summary
from .trends import plot_cn, plot_fit_parameters, plot_white_line
from .two_phase import plot_two_phase
from .wavelet import plot_wavelet

__all__ = ["plot_condition_logs", "plot_cn", "plot_two_phase", "plot_white_line", "plot_fit_parameters", "plot_fractions", "plot_lcf_fit",
           "plot_pca", "plot_mcr", "plot_xanes_map", "plot_xanes_difference", "plot_chir_waterfall",
           "plot_fit", "plot_wavelet", "plot_summary", "step_explorer", "save_figure",
           "write_report", "write_athena", "athena_group_names", "STATE_COLORS", "EVENT_MARKERS",
           "EDGE_WINDOW"]
