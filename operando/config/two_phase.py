"""``[exafs] two_phase`` (:class:`~.sections.TwoPhaseConfig`): its keys and the sections
it needs."""

from __future__ import annotations

from typing import Mapping

from .._util.validate import suggest as _suggest
from ..errors import ConfigError
from .sections import TwoPhaseConfig


#: ``[exafs] two_phase`` keys and choices (:class:`~.sections.TwoPhaseConfig`).
TWO_PHASE_FRACTIONS = ("xanes", "xanes_prior", "fit")
TWO_PHASE_DISORDER = ("foil", "free")


def two_phase_config(data: Mapping):
    """``[exafs] two_phase`` of the raw configuration, checked against the sections it
    needs: ``[components]`` (the isolated state is one of its references; the XANES
    fraction) and, with ``disorder = "foil"``, a ``[foil] file``."""
    value = (data.get("exafs") or {}).get("two_phase")
    if value is None:
        return None
    where = "[exafs] two_phase"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table such as {{ isolated = \"cuo\", fraction = "
                          f"\"xanes\", disorder = \"foil\" }}, got {value!r}")
    unknown = sorted(set(value) - {"isolated", "fraction", "disorder"})
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'{_suggest(unknown[0], ('isolated', 'fraction', 'disorder'))} "
                          "(accepted: isolated, fraction, disorder)")
    isolated = value.get("isolated")
    if not isinstance(isolated, str) or not isolated:
        raise ConfigError(f"{where} isolated = {isolated!r}: must be the name of a [components] "
                          "standard (the isolated state's spectrum)")
    out = TwoPhaseConfig(isolated=isolated,
                         **{k: value[k] for k in ("fraction", "disorder") if k in value})
    for key, choices in (("fraction", TWO_PHASE_FRACTIONS), ("disorder", TWO_PHASE_DISORDER)):
        if getattr(out, key) not in choices:
            raise ConfigError(f"{where} {key} = {getattr(out, key)!r}: must be "
                              + " or ".join(f'"{c}"' for c in choices))
    if "components" not in data:
        raise ConfigError(f"{where} needs [components] with the isolated state ('{isolated}') "
                          "as a standard")
    if out.disorder == "foil" and not (data.get("foil") or {}).get("file"):
        raise ConfigError(f'{where} disorder = "foil" needs [foil] file (the foil\'s '
                          'sigma2); or use disorder = "free"')
    return out
