"""EXAFS engines and the one place that picks them.

==========  ================================================================
``"fast"``  :class:`~.fast.FastEngine`: every step at once with the batched
            primitives of :mod:`operando.exafs.batch` (default)
``"larch"`` :class:`~.larch.LarchEngine`: ``larch.xafs.autobk`` and
            ``larch.xafs.feffit`` per step, the oracle
==========  ================================================================

:func:`get_engine` checks a request against what the engine declares and refuses
it with a :class:`~operando.errors.ConfigError` naming the engines that can do it;
no stage decides an engine's abilities again.
"""

from __future__ import annotations

from ..._util.validate import check_choice
from ...errors import ConfigError
from .base import Engine
from .fast import FastEngine
from .larch import LarchEngine

__all__ = ["Engine", "ENGINES", "get_engine"]

ENGINES: dict[str, Engine] = {"fast": FastEngine(), "larch": LarchEngine()}


def get_engine(name: str, *, model=None, joint: bool = False) -> Engine:
    """The engine ``name``, checked to support ``model`` (its fit space) and joint fits.

    Raises
    ------
    ConfigError
        Unknown engine, or one that does not support the request (the message names
        what is missing and the engines that support it).
    """
    check_choice("engine", name, tuple(ENGINES))
    engine = ENGINES[name]
    missing = engine.unsupported(model=model, joint=joint)
    if missing:
        able = [n for n, e in ENGINES.items() if e.unsupported(model=model, joint=joint) is None]
        hint = f"; use engine={able[0]!r}" if able else ""
        raise ConfigError(f"{missing} is not supported by engine={name!r}{hint}")
    return engine
