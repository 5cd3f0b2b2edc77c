"""Settings resolved once: every shared setting's default lives in its options dataclass
(operando/options), and reading a configuration stays light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from operando import options
from operando.config import (ComponentsConfig, ExafsConfig, FoilConfig, NormalizeConfig,
                             load_config)
from operando.errors import ConfigError, DataError

PACKAGE = Path(options.__file__).resolve().parents[1]
STAGES = (options.NormalizeOptions, options.WhiteLineOptions, options.FTOptions,
          options.FitOptions, options.BackgroundOptions, options.FoilOptions,
          options.ComponentOptions)
#: Every shared setting and its default(s): a name may have different defaults in two
#: stages (AUTOBK's ``dk`` 0.1, the fits' 1.0), both are that name's defaults.
SHARED: dict[str, set] = {}
for cls in STAGES:
    for f in fields(cls):
        SHARED.setdefault(f.name, set()).add(repr(f.default))

#: Names shared with a setting of another meaning, where a literal is that other
#: setting's own default: (module path under operando/, name) -> why.
OTHER_MEANING = {
    ("xanes/deglitch.py", "window"): "the median filter's width in points",
    ("xanes/calibrate.py", "max_shift"): "the calibration's largest shift (eV)",
    ("exafs/phases.py", "rmax"): "the radius of a FEFF cluster / of the phase paths",
    ("exafs/phases.py", "kmin"): "an example in the module docstring",
    ("exafs/phases.py", "kmax"): "an example in the module docstring",
    ("exafs/phases.py", "rmin"): "an example in the module docstring",
    ("simulate/spec.py", "kmax"): "the k range of the simulated data",
    ("simulate/edge.py", "e0"): "the simulated edge",
    ("viz/spectra.py", "window"): "the energy window of the XANES map (eV)",
    ("viz/spectra.py", "rmax"): "the R range drawn",
    ("viz/summary.py", "rmax"): "the R range drawn",
    ("viz/explorer.py", "rmax"): "the R range drawn",
    ("xanes/merge.py", "max_shift"): "the largest alignment shift of repeats (eV)",
    ("_util/larch_compat.py", "window"): "Larch's ftwindow, signature as Larch's (tested equal)",
    ("exafs/wavelet.py", "kweight"): "cauchy_wavelet / morlet_wavelet: Larch's signature "
                                     "(kweight 0); wavelet_transform takes FTOptions'",
    ("exafs/batch/paths.py", "e0"): "a path's energy shift dE0 (eV), not the edge energy",
    ("exafs/batch/paths.py", "deltar"): "a path's dR (Angstrom), not the foil policy",
    ("exafs/batch/paths.py", "sigma2"): "a path's sigma2 (A^2), not the foil policy",
    ("exafs/phases.py", "de0"): "a phase's dE0 rule (held at the edge), not the foil policy",
    ("simulate/named.py", "de0"): "a simulated shell's dE0 (eV)",
    ("simulate/spec.py", "de0"): "a simulated shell's dE0 (eV)",
    ("mixtures/_noise.py", "kmin"): "the k range of the noise estimate",
    ("mixtures/_references.py", "erange"): "the energy range a mixture is built on",
    ("mixtures/_references.py", "pre2"): "the mixing tool's own pre-edge range",
    ("simulate/edge.py", "kmax"): "the k range of the simulated data",
    ("components/combinatorial.py", "shifts"): "a record: combinations fit no shifts",
    ("components/lcf.py", "shifts"): "a record: lcf_arrays fits no shifts",
    ("exafs/fit.py", "engine"): "fit_shells_segment, an alias whose one purpose is the "
                                "larch engine (being removed: issue 19, item 3)",
    ("pipeline/prepare.py", "e0"): "the series E0 is the median of the sampled rows, "
                                   "whatever the policy",
}


def _literal(node) -> bool:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return value is not None


def _same(node, name) -> bool:
    return _literal(node) and repr(_norm(ast.literal_eval(node))) in {
        repr(_norm(eval(d))) for d in SHARED[name]}  # noqa: S307 - reprs of our own literals


def _norm(value):
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _restatements(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text())
    out = []

    def flag(node, name, what):
        if name in SHARED and (rel, name) not in OTHER_MEANING:
            out.append(f"operando/{rel}:{node.lineno}: {what} states a default of '{name}'")

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            pos = a.posonlyargs + a.args
            for arg, default in zip(pos[len(pos) - len(a.defaults):], a.defaults):
                if _literal(default):
                    flag(default, arg.arg, "a parameter default")
            for arg, default in zip(a.kwonlyargs, a.kw_defaults):
                if default is not None and _literal(default):
                    flag(default, arg.arg, "a parameter default")
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = node.value
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                    and value.func.id == "setting" and value.args):
                value = value.args[0]          # setting(default, rule): a field with its rule
            if value is not None and _literal(value):
                flag(node, node.target.id, "a field default")
        elif isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop")
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str) and _literal(node.args[1])):
                flag(node, node.args[0].value, "a fallback of .get")
            # A call naming a key with a default: check(section, "key", value, default=...)
            named = [a.value for a in node.args[:2]
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            for kw in node.keywords:
                if kw.arg == "default" and named and _literal(kw.value):
                    flag(kw.value, named[-1], "a validator default")
                elif kw.arg in SHARED and _same(kw.value, kw.arg):
                    flag(kw.value, kw.arg, "a keyword argument equal to the default")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if (isinstance(key, ast.Constant) and isinstance(key.value, str)
                        and key.value in SHARED and _same(value, key.value)):
                    flag(value, key.value, "a dict entry equal to the default")
    return out


def test_no_shared_default_is_stated_outside_its_options_dataclass():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "options" and path.parent.parent == PACKAGE:
            continue
        found += _restatements(path)
    assert not found, "defaults stated outside operando/options:\n" + "\n".join(found)


def test_the_scan_finds_a_restated_default(tmp_path):
    # The scan must be able to fail: each form it looks for, planted in a module.
    planted = PACKAGE / "xanes" / "_planted_for_test.py"
    planted.write_text('def f(x, *, kweight=2, window="kaiser"):\n'
                       '    return x.get("rbkg", 1.0), dict(dk=1.0), {"e0": "median"}\n'
                       'class C:\n    kmin: float = setting(3.0, rule)\n')
    try:
        found = _restatements(planted)
    finally:
        planted.unlink()
    assert [line.split(": ", 1)[1] for line in found] == [
        "a parameter default states a default of 'kweight'",
        "a parameter default states a default of 'window'",
        "a field default states a default of 'kmin'",
        "a fallback of .get states a default of 'rbkg'",
        "a keyword argument equal to the default states a default of 'dk'",
        "a dict entry equal to the default states a default of 'e0'",
    ]


def test_config_sections_take_their_defaults_from_the_options():
    # A section is built on its stage's options (one field, one default); the keys it adds
    # for another stage take that stage's default by reference.
    for section, opts in ((NormalizeConfig, options.NormalizeOptions),
                          (ExafsConfig, options.FitOptions), (FoilConfig, options.FoilOptions),
                          (ComponentsConfig, options.ComponentOptions)):
        assert issubclass(section, opts), section.__name__
        assert opts.of(section()) == opts(), section.__name__
    background = {"rbkg": "rbkg", "bkg_kmin": "kmin", "kweight": "kweight", "engine": "engine"}
    for key, name in background.items():
        assert ExafsConfig.__dataclass_fields__[key].default == getattr(
            options.BackgroundOptions, name), key
    assert ExafsConfig().background() == options.BackgroundOptions()
    from operando.exafs import ShellModel
    assert issubclass(ShellModel, options.FitOptions)
    assert options.FitOptions.of(ShellModel()) == options.FitOptions()
    # A configuration without the keys resolves to exactly the options' defaults.
    cfg = load_config({"series": {"source": "x"}, "exafs": {}, "foil": {"s02": 0.9},
                       "components": {"standards": ["first", "last"]}})
    assert cfg.normalize.e0 == options.NormalizeOptions.e0 == "median"
    assert cfg.exafs.window == options.FTOptions.window
    assert cfg.exafs.rbkg == options.BackgroundOptions.rbkg
    assert tuple(cfg.components.erange) == options.ComponentOptions.erange


def test_options_unpack_into_their_stage_function():
    import inspect

    from operando.components import lcf
    from operando.exafs import ShellModel, remove_background
    from operando.xanes import normalize, white_line

    for fn, opts in ((normalize, options.NormalizeOptions()), (white_line, options.WhiteLineOptions()),
                     (remove_background, options.BackgroundOptions()),
                     (lcf, options.ComponentOptions())):
        params = inspect.signature(fn).parameters
        for key in opts.keys():
            assert params[key].default == opts[key], (fn.__name__, key)
    model = ShellModel(shells=["Pt-O", "Pt-Pt"], **options.FitOptions())
    assert model == ShellModel(shells=["Pt-O", "Pt-Pt"])
    assert dict(options.FTOptions().replace(kmax=10.0))["kmax"] == 10.0
    with pytest.raises(KeyError):
        options.FTOptions()["rbkg"]


def test_user_errors_are_value_errors():
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    with pytest.raises(ValueError, match=r"\[normalize\] e0"):
        load_config({"series": {"source": "x"}, "normalize": {"e0": "fist"}})


CHILD = r"""
import json, sys
import operando.config
after_import = sorted(m for m in sys.modules if m.split(".")[0] in ("operando", "lmfit", "larch", "scipy", "pandas"))
operando.config.load_config(sys.argv[1])
after_load = sorted(m for m in sys.modules if m.split(".")[0] in ("operando", "lmfit", "larch", "scipy", "pandas"))
print(json.dumps([after_import, after_load]))
"""


def test_reading_a_configuration_imports_no_analysis_stage():
    demo = PACKAGE / "data" / "demos" / "pt_co_oxidation.toml"   # has [exafs] shells
    out = subprocess.run([sys.executable, "-c", CHILD, str(demo)], check=True,
                         capture_output=True, text=True, cwd=PACKAGE.parent).stdout
    after_import, after_load = json.loads(out)
    for heavy in ("operando.exafs", "operando.tracking", "operando.xanes", "lmfit", "larch",
                  "scipy", "pandas"):
        assert heavy not in after_import, heavy
    for heavy in ("operando.exafs.engines", "operando.exafs.fit", "lmfit", "larch"):
        assert heavy not in after_load, heavy


def test_the_run_plan_holds_the_options_and_settings_json_records_them():
    from operando.pipeline.settings import resolve

    cfg = load_config({"series": {"source": "x"}, "normalize": {"nnorm": 1, "wl_window": [-5, 20]},
                       "exafs": {"kmax": 11.0, "rbkg": 1.1}, "foil": {"s02": 0.9},
                       "components": {"standards": ["first", "last"], "erange": [-30, 60]}})
    plan = resolve(cfg, 10)
    assert plan.normalize == options.NormalizeOptions(nnorm=1)
    assert plan.white_line == options.WhiteLineOptions(window=(-5.0, 20.0))
    assert plan.fit.background() == options.BackgroundOptions(rbkg=1.1)
    assert options.FitOptions.of(plan.fit) == options.FitOptions(kmax=11.0)
    assert plan.ft == options.FTOptions(kmax=11.0)
    record = json.loads(json.dumps(plan.options_record()))      # as written to settings.json
    for name, cls, expected in (
            ("normalize", options.NormalizeOptions, plan.normalize),
            ("background", options.BackgroundOptions, options.BackgroundOptions(rbkg=1.1)),
            ("fit", options.FitOptions, options.FitOptions(kmax=11.0)),
            ("ft", options.FTOptions, plan.ft)):
        assert cls(**record[name]) == expected
    assert record["components"]["erange"] == [-30.0, 60.0]


def test_the_options_and_the_configuration_check_a_value_by_one_rule():
    from operando.exafs import ShellModel

    with pytest.raises(ConfigError) as lib:
        options.FitOptions(kweight=2.5)
    with pytest.raises(ConfigError) as cfg:
        load_config({"series": {"source": "x"}, "foil": {"s02": 0.9}, "exafs": {"kweight": 2.5}})
    assert str(cfg.value) == f"[exafs] {lib.value}"
    assert str(lib.value) == "kweight = 2.5: must be an integer from 0 to 3"
    with pytest.raises(ConfigError, match="window = 'haning'.*did you mean 'hanning'"):
        ShellModel(window="haning")                    # the shell model is a FitOptions
    with pytest.raises(ConfigError, match=r"z_high = 1\.0: must be >= z_event"):
        options.TrackSettings(z_high=1.0)
    # a rule also normalises: the word's case, an integral float
    assert options.FitOptions(window="Kaiser", kweight=3.0) == options.FitOptions(window="kaiser",
                                                                                  kweight=3)
