"""Configuration loading and validation (operando.config)."""


import pytest

from operando.config import Config, load_config
from operando.errors import ConfigError

MINIMAL = '[series]\nsource = "scans"\n'


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(text)
    return str(info.value)


def test_minimal_defaults_and_roundtrip(tmp_path):
    cfg = load_config(MINIMAL, base_dir=tmp_path)
    assert isinstance(cfg, Config)
    assert cfg.series.source == (str(tmp_path / "scans"),)
    assert cfg.normalize.e0 == "median"  # robust: one odd spectrum cannot move it
    assert cfg.exafs.enabled is False
    assert cfg.output.plots == ("png",)
    d = cfg.to_dict()
    assert d["series"]["source"] == [str(tmp_path / "scans")]
    assert d["run"]["chunk_size"] == "auto"
    assert d["output"]["athena"] == "auto"
    # A Config passes through unchanged; a dict gives the same settings.
    assert load_config(cfg) is cfg
    same = load_config({"series": {"source": "scans"}}, base_dir=tmp_path)
    assert same.config_hash() == cfg.config_hash()


def test_relative_paths_resolve_against_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "run.toml").write_text(
        '[series]\nsource = ["data/a.xdi", "data/*.dat"]\nconditions = "cond.csv"\n'
        '[foil]\nfile = "../foils/pt.xdi"\n[exafs]\n[output]\ndir = "out"\n'
    )
    monkeypatch.chdir(tmp_path)  # must not matter
    cfg = load_config(folder / "run.toml")
    assert cfg.series.source == (str(folder / "data" / "a.xdi"), str(folder / "data" / "*.dat"))
    assert cfg.series.conditions == str(folder / "cond.csv")
    assert cfg.foil.file == str(tmp_path / "foils" / "pt.xdi")
    assert cfg.output.dir == str(folder / "out")
    assert cfg.path == str(folder / "run.toml")
    # Default output folder is named after the config file, next to it.
    (folder / "b.toml").write_text(MINIMAL)
    assert load_config(str(folder / "b.toml")).output.dir == str(folder / "b-output")


def test_unknown_key_suggests_close_match():
    msg = _error(MINIMAL + '[exafs]\nkmn = 2\ns02 = 1\n')
    assert "unknown key 'kmn' in [exafs]" in msg and "did you mean 'kmin'?" in msg


def test_unknown_key_in_wrong_section_says_where_it_belongs():
    msg = _error(MINIMAL + '[normalize]\nrbkg = 1.0\n')
    assert "'rbkg'" in msg and "belongs in [exafs]" in msg


def test_unknown_section_suggests_close_match():
    msg = _error(MINIMAL + '[exfas]\nkmin = 2\n')
    assert "unknown section [exfas]" in msg and "did you mean 'exafs'?" in msg


def test_unknown_track_threshold_is_reported():
    msg = _error(MINIMAL + '[track]\nz_evnet = 3\n')
    assert "z_evnet" in msg and "z_event" in msg


@pytest.mark.parametrize("section, key, value, expected", [
    ("exafs", "kmin", "-1", "kmin = -1: must be a number >= 0 and < kmax (12)"),
    ("exafs", "kmin", "13", "kmin = 13: must be a number >= 0 and < kmax (12)"),
    ("exafs", "kmin", '"3"', "kmin = '3': must be a number >= 0"),
    ("exafs", "kweight", "2.5", "kweight = 2.5: must be an integer from 0 to 3"),
    ("exafs", "window", '"haning"', "did you mean 'hanning'?"),
    ("exafs", "rmin", "4.0", "rmin = 4.0: must be a number >= 0 and < rmax (3.2)"),
    ("exafs", "share_e0", '"yes"', "share_e0 = 'yes': must be true (one dE0), false"),
    ("normalize", "e0", '"last"', "e0 = 'last': must be one of 'median', 'first', 'each', 'reference'"),
    ("normalize", "e0", "-5", "e0 = -5: must be \"median\", \"first\", \"each\", \"reference\" or a number (eV) > 0"),
    ("normalize", "nnorm", "7", "nnorm = 7: must be an integer from 0 to 3"),
    ("normalize", "wl_window", "[10, -5]", "wl_window = [10, -5]: must be a pair [low, high]"),
    ("output", "plots", '["png", "gif"]', "plots = ['png', 'gif']: must be a list of formats"),
    ("run", "chunk_size", "0", "chunk_size = 0: must be an integer >= 1"),
    ("run", "chunk_size", '"big"', "must be \"auto\" or an integer >= 1"),
    ("output", "athena", '"maybe"', "must be \"auto\""),
])
def test_wrong_type_or_range_names_key_value_and_accepted(section, key, value, expected):
    extra = '[foil]\ns02 = 0.85\n' if section == "exafs" else ""
    msg = _error(MINIMAL + extra + f"[{section}]\n{key} = {value}\n")
    assert f"[{section}]" in msg
    assert expected in msg


def test_bool_is_not_a_number():
    assert "kmax = True" in _error(MINIMAL + "[foil]\ns02 = 0.9\n[exafs]\nkmax = true\n")


def test_pre_edge_order_checked():
    assert "pre1 = -20.0: must be < pre2 (-50)" in _error(MINIMAL + "[normalize]\npre1 = -20\npre2 = -50\n")


def test_exafs_needs_s02_source():
    msg = _error(MINIMAL + "[exafs]\n")
    assert "[foil] needs file" in msg and "s02" in msg
    assert "not both" in _error(MINIMAL + '[foil]\nfile = "f.xdi"\ns02 = 0.8\n')


def test_shell_labels_validated():
    base = MINIMAL.replace('"scans"', '"scans"\nelement = "Pt"') + "[foil]\ns02 = 0.85\n"
    cfg = load_config(base + '[exafs]\nshells = ["Pt-O", "Pt-Pt"]\n')
    assert cfg.exafs.shells == ("Pt-O", "Pt-Pt")
    assert cfg.foil.shell == "Pt-Pt"  # default reference shell: the metal shell
    assert "Absorber-Scatterer" in _error(base + '[exafs]\nshells = ["PtO"]\n')
    assert "start with the absorber ('Pt-...')" in _error(base + '[exafs]\nshells = ["Cu-N"]\n')


def test_series_source_required(tmp_path):
    assert "needs a [series] section" in _error("[normalize]\ne0 = 'each'\n")
    assert "source is missing" in _error("[series]\nelement = 'Pt'\n")
    cfg = load_config('[series]\nsource = ["a.dat", "b.dat"]\n', base_dir=tmp_path)
    assert cfg.series.source == (str(tmp_path / "a.dat"), str(tmp_path / "b.dat"))
    assert "unknown key 'files'" in _error('[series]\nfiles = ["a"]\n')  # one name per setting


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[series\nsource = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_hash_ignores_output_but_not_analysis(tmp_path):
    a = load_config(MINIMAL, base_dir=tmp_path)
    assert a.with_output(dir=tmp_path / "elsewhere").config_hash() == a.config_hash()
    assert a.with_run(workers=4).config_hash() == a.config_hash()
    assert a.with_run(chunk_size=3).config_hash() != a.config_hash()
    # "auto" is hashed as resolved: the same chunks give the same hash.
    assert a.with_run(chunk_size=500).config_hash(1000) == a.config_hash(1000)
    assert a.config_hash(1000) != a.config_hash(10_000)
    assert a.with_run(workers=4).config_hash(1000) == a.config_hash(1000)
    b = load_config(MINIMAL + "[normalize]\ne0 = 'each'\n", base_dir=tmp_path)
    assert b.config_hash() != a.config_hash()
    with pytest.raises(ConfigError, match="workers"):
        a.with_run(workers=-1)


def test_series_reference_column_or_file(tmp_path):
    """[series] reference: a file (path separator, data suffix or existing file) resolves
    against the config folder; anything else is the iref column name."""
    (tmp_path / "refs").mkdir()
    (tmp_path / "foilref").write_text("# energy ref_000\n1 2\n")
    for value, expected in (('"refs/cu_ref.dat"', str(tmp_path / "refs" / "cu_ref.dat")),
                            ('"cu_ref.dat"', str(tmp_path / "cu_ref.dat")),
                            ('"foilref"', str(tmp_path / "foilref")),
                            ('"irefer"', "irefer"), ('"auto"', "auto"), ("false", False)):
        cfg = load_config(MINIMAL + f"reference = {value}\n", base_dir=tmp_path)
        assert cfg.series.reference == expected, value
    assert "reference = 3" in _error(MINIMAL + "reference = 3\n")


def test_exafs_defaults_are_the_shell_model_defaults(tmp_path):
    """A config that leaves the fit window out gets exactly ShellModel's defaults (the parser
    once carried its own copy and gave rmin 1.0 while the model said 1.2)."""
    from dataclasses import fields

    from operando.config import ExafsConfig
    from operando.exafs import ShellModel

    config = load_config('[series]\nsource = "x.dat"\n[foil]\ns02 = 0.9\n'
                         '[exafs]\nshells = ["Cu-N"]\n', base_dir=tmp_path)
    model_fields = {f.name for f in fields(ShellModel)}
    for f in fields(ExafsConfig):
        if f.name in model_fields and f.name != "shells":
            assert getattr(config.exafs, f.name) == getattr(ShellModel(), f.name), f.name
    assert config.exafs.bkg_kmin == 0.0  # Larch's autobk default
