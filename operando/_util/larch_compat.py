"""The few small xraylarch definitions the fast engine uses, without importing larch.

Importing ``larch.xafs`` (or anything under ``larch.math``) pulls in lmfit,
scipy.stats, scikit-learn, xraydb and SQLAlchemy, and every worker process would
pay for it again.  These are line-for-line copies of Larch's code
(xraylarch 2025-2026) so the fast engine stays identical to Larch; the tests
(tests/exafs/test_batch.py) compare each against Larch itself.

=====================  =================================================
``ETOK``, ``KTOE``     ``larch.xafs.xafsutils`` constants
``TINY_ENERGY``        ``larch.xafs.xafsutils.TINY_ENERGY``
``SMALL_ENERGY``       ``larch.xafs.feffdat.SMALL_ENERGY``
:func:`remove_dups`    ``larch.math.remove_dups``
:func:`index_of`       ``larch.math.index_of``
:func:`index_nearest`  ``larch.math.index_nearest``
:func:`ftwindow`       ``larch.xafs.xafsft.ftwindow``
:func:`find_energy_step`  ``larch.xafs.pre_edge.find_energy_step``
:func:`lorentzian`     ``larch.math.lineshapes.lorentzian``
:func:`read_feffdat`   the arrays of ``larch.xafs.feffdat.FeffDatFile``
=====================  =================================================
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

# larch.xafs.xafsutils: KTOE = 1e20 hbar^2 / (2 m_e e) from scipy.constants.  The
# values are scipy.constants' (CODATA 2022, scipy >= 1.15; h and e are exact in SI,
# hbar = h / 2 pi as scipy computes it), written out because importing
# scipy.constants in every worker would cost more than it saves.
# tests/exafs/test_batch.py checks ETOK against Larch's bit for bit.
_HBAR = 6.62607015e-34 / (2 * np.pi)
_M_E = 9.1093837139e-31
_E = 1.602176634e-19
KTOE = 1.e20 * _HBAR**2 / (2 * _M_E * _E)
ETOK = 1.0 / KTOE
TINY_ENERGY = 0.00050
SMALL_ENERGY = 1.e-6
FT_WINDOWS_SHORT = ("kai", "han", "par", "wel", "gau", "sin")
#: The Fourier-transform window names Larch accepts, the one list every stage checks
#: against (Larch reads the first three letters; "fhanning" has a branch in its code but
#: is refused by its own name check, so it is not offered).
FT_WINDOWS = ("hanning", "kaiser", "parzen", "welch", "gaussian", "sine")


def remove_dups(arr, tiny=1.e-6):
    """``larch.math.remove_dups``: nudge repeated successive values up by ``tiny``."""
    work = np.asarray(arr)
    if work.size <= 1:
        return arr
    work = work.flatten()
    min_step = min(np.diff(work))
    if min_step > 10 * tiny:
        return work
    previous_val = np.nan
    previous_add = 0
    npts = len(work)
    add = np.zeros(npts)
    for i in range(1, npts):
        if not np.isnan(work[i - 1]):
            previous_val = work[i - 1]
            previous_add = add[i - 1]
        val = work[i]
        if np.isnan(val) or np.isnan(previous_val):
            continue
        diff = abs(val - previous_val)
        if diff < tiny:
            add[i] = previous_add + tiny
    return work + add


def index_of(array, value):
    """``larch.math.index_of``: index of the last point of ``array`` at or below ``value``
    (0 below its start).  For the increasing grids it is used on, a binary search gives
    Larch's answer (``max(where(array <= value))``) without scanning the array."""
    array = np.asarray(array)
    if value < array[0]:
        return 0
    return int(np.searchsorted(array, value, side="right") - 1)


def index_nearest(array, value):
    """``larch.math.index_nearest``."""
    return int(np.abs(array - value).argmin())


def find_energy_step(energy, frac_ignore=0.01, nave=10):
    """``larch.xafs.pre_edge.find_energy_step``."""
    nskip = int(frac_ignore * len(energy))
    e_ordered = np.where(np.diff(np.argsort(energy)) == 1)[0]
    ediff = np.diff(energy[e_ordered][nskip:-nskip])
    return float(ediff[np.argsort(ediff)][nskip:nskip + nave].mean())


def lorentzian(x, amplitude=1.0, center=0.0, sigma=1.0):
    """``larch.math.lineshapes.lorentzian``."""
    tiny = 1.e-15
    return (amplitude / (1 + ((1.0 * x - center) / max(tiny, sigma))**2)) / max(tiny, np.pi * sigma)


def ftwindow(x, xmin=None, xmax=None, dx=1, dx2=None, window="hanning", **kws):
    """``larch.xafs.xafsft.ftwindow``: Fourier-transform window on the grid ``x``."""
    from numpy import cos, exp, ones, pi, sin, sqrt, where, zeros

    if window is None:
        window = FT_WINDOWS_SHORT[0]
    nam = window.strip().lower()[:3]
    if nam not in FT_WINDOWS_SHORT:
        raise RuntimeError("invalid window name %s" % window)
    dx1 = dx
    if dx2 is None:
        dx2 = dx1
    if xmin is None:
        xmin = min(x)
    if xmax is None:
        xmax = max(x)
    xstep = (x[-1] - x[0]) / (len(x) - 1)
    if xstep < 0 or np.isnan(xstep):
        xstep = 1.e-3
    xeps = 1.e-4 * xstep
    x1 = max(min(x), xmin - dx1 / 2.0)
    x2 = xmin + dx1 / 2.0 + xeps
    x3 = xmax - dx2 / 2.0 - xeps
    x4 = min(max(x), xmax + dx2 / 2.0)
    if nam == "fha":
        if dx1 < 0:
            dx1 = 0
        if dx2 > 1:
            dx2 = 1
        x2 = x1 + xeps + dx1 * (xmax - xmin) / 2.0
        x3 = x4 - xeps - dx2 * (xmax - xmin) / 2.0
    elif nam == "gau":
        dx1 = max(dx1, xeps)

    def asint(val):
        return int((val + xeps) / xstep)

    i1, i2, i3, i4 = asint(x1), asint(x2), asint(x3), asint(x4)
    i1, i2 = max(0, i1), max(0, i2)
    i3, i4 = min(len(x) - 1, i3), min(len(x) - 1, i4)
    if i2 == i1:
        i1 = max(0, i2 - 1)
    if i4 == i3:
        i3 = max(i2, i4 - 1)
    x1, x2, x3, x4 = x[i1], x[i2], x[i3], x[i4]
    if x1 == x2:
        x2 = x2 + xeps
    if x3 == x4:
        x4 = x4 + xeps
    fwin = zeros(len(x))
    if i3 > i2:
        fwin[i2:i3] = ones(i3 - i2)
    if nam in ("han", "fha"):
        fwin[i1:i2 + 1] = sin((pi / 2) * (x[i1:i2 + 1] - x1) / (x2 - x1))**2
        fwin[i3:i4 + 1] = cos((pi / 2) * (x[i3:i4 + 1] - x3) / (x4 - x3))**2
    elif nam == "par":
        fwin[i1:i2 + 1] = (x[i1:i2 + 1] - x1) / (x2 - x1)
        fwin[i3:i4 + 1] = 1 - (x[i3:i4 + 1] - x3) / (x4 - x3)
    elif nam == "wel":
        fwin[i1:i2 + 1] = 1 - ((x[i1:i2 + 1] - x2) / (x2 - x1))**2
        fwin[i3:i4 + 1] = 1 - ((x[i3:i4 + 1] - x3) / (x4 - x3))**2
    elif nam in ("kai", "bes"):
        from scipy.special import i0 as bessel_i0

        cen = (x4 + x1) / 2
        wid = (x4 - x1) / 2
        arg = 1 - (x - cen)**2 / (wid**2)
        arg[where(arg < 0)] = 0
        if nam == "bes":
            fwin = bessel_i0(dx * sqrt(arg)) / bessel_i0(dx)
            fwin[where(x <= x1)] = 0
            fwin[where(x >= x4)] = 0
        else:
            scale = max(1.e-10, bessel_i0(dx) - 1)
            fwin = (bessel_i0(dx * sqrt(arg)) - 1) / scale
    elif nam == "sin":
        fwin[i1:i4 + 1] = sin(pi * (x4 - x[i1:i4 + 1]) / (x4 - x1))
    elif nam == "gau":
        cen = (x4 + x1) / 2
        fwin = exp(-(((x - cen)**2) / (2 * dx1 * dx1)))
    return fwin


def read_feffdat(filename) -> SimpleNamespace:
    """The parts of ``larch.xafs.feffdat.FeffDatFile`` the fast engine uses.

    Returns a namespace with ``filename, degen, reff, nleg, geom`` (list of
    ``(label, iz, ipot)``) and the arrays ``k, pha, amp, rep, lam`` computed as
    Larch does (``pha = real_phc + pha_feff``, ``amp = mag_feff * red_fact``).
    """
    with open(filename, "r") as fh:
        lines = fh.readlines()
    mode = "header"
    out = SimpleNamespace(filename=str(filename), degen=1.0, reff=0.0, nleg=0, geom=[])
    data = []
    pcounter = 0
    for line in lines[1:]:
        line = line[:-1].strip()          # as Larch: drops the last character
        if line.startswith("#"):
            line = line[1:]
        line = line.strip()
        if line.startswith("k") and line.endswith("real[p]@#"):
            mode = "arrays"
            continue
        elif "----" in line[2:10]:
            mode = "path"
            continue
        if mode == "path":
            pcounter += 1
            if pcounter == 1:
                w = [float(x) for x in line.split()[:5]]
                out.nleg = int(w.pop(0))
                out.degen, out.reff = w[0], w[1]
            elif pcounter > 2:
                words = line.split()
                iz = int(words[4])
                lab = words[5] if len(words) > 5 else _atomic_symbol(iz)
                out.geom.append((lab, iz, int(words[3])))
        elif mode == "arrays":
            d = np.array([float(x) for x in line.split()])
            if len(d) == 7:
                data.append(d)
    data = np.array(data).transpose()
    out.k = data[0]
    out.pha = data[1] + data[3]
    out.amp = data[2] * data[4]
    out.lam = data[5]
    out.rep = data[6]
    return out


def _atomic_symbol(iz):
    from xraydb import atomic_symbol   # only for files without atom labels

    return atomic_symbol(iz)
