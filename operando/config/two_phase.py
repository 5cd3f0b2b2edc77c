"""``[exafs] two_phase`` (:class:`~.sections.TwoPhaseConfig`): its keys and the sections
it needs."""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping

from .._util.validate import check_keys
from ..errors import ConfigError
from .sections import TwoPhaseConfig


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
    check_keys(where, value, [f.name for f in fields(TwoPhaseConfig)])
    try:
        out = TwoPhaseConfig(**value)
    except ConfigError as exc:
        raise ConfigError(f"{where} {exc}") from None
    if "components" not in data:
        raise ConfigError(f"{where} needs [components] with the isolated state ('{out.isolated}') "
                          "as a standard")
    if out.disorder == "foil" and not (data.get("foil") or {}).get("file"):
        raise ConfigError(f'{where} disorder = "foil" needs [foil] file (the foil\'s '
                          'sigma2); or use disorder = "free"')
    return out
