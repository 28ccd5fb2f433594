"""Config validation, parsing and naming (pure Python)."""

import dataclasses
import pathlib
import re

import pytest

from tinylpu.config import ACT_BITS, DEFAULT, ELEM_ADDR_BITS, X_BITS, Config, ConfigError


def test_defaults_are_valid_and_documented():
    cfg = Config()
    assert dataclasses.asdict(cfg) == dict(lanes=16, rows=4, wdepth=1024, act_banks=2,
                                           adepth=256, pdepth=64, data_bits=8, acc_bits=32,
                                           tdepth=512, mdepth=256, rdepth=256, wbytes=1, pv=0,
                                           wtail=0)
    assert cfg == DEFAULT
    assert cfg.macs == 64
    assert cfg.word_bits == 128
    assert cfg.act_word_bits == 16 * ACT_BITS == 512
    assert cfg.beats_per_word == 4
    assert cfg.weight_bytes == 4 * 1024 * 16
    assert cfg.act_bytes == 2 * 256 * 16 * 4
    assert (ACT_BITS, X_BITS) == (32, 16)


def test_derived_quantities_of_a_small_config():
    cfg = Config(lanes=4, rows=1, data_bits=6, acc_bits=16)
    assert cfg.macs == 4
    assert cfg.word_bits == 24
    assert cfg.act_word_bits == 128
    assert cfg.beats_per_word == 1
    cfg = Config(lanes=8, rows=2, data_bits=7, acc_bits=20)
    assert cfg.word_bits == 56
    assert cfg.beats_per_word == 2


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().lanes = 8


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lanes=0), "lanes must be in [2, 64], not 0"),
    (dict(lanes=65), "lanes must be in [2, 64], not 65"),
    (dict(lanes=-16), "lanes must be in [2, 64], not -16"),
    (dict(rows=0), "rows must be in [1, 64], not 0"),
    (dict(lanes=64, rows=65), "rows must be in [1, 64], not 65"),
    (dict(rows=3), "rows must be a power of two, not 3"),
    (dict(lanes=12, rows=4), "lanes must be a power of two, not 12"),
    (dict(lanes=6, rows=3), "lanes must be a power of two, not 6"),
    (dict(lanes=8, rows=16), "lanes (8) must be a multiple of rows (16)"),
    (dict(act_banks=3), "act_banks must be 1, 2 or 4, not 3"),
    (dict(act_banks=0), "act_banks must be 1, 2 or 4, not 0"),
    (dict(act_banks=8), "act_banks must be 1, 2 or 4, not 8"),
    (dict(wdepth=1000), "wdepth must be a power of two, not 1000"),
    (dict(wdepth=1), "wdepth must be in [2, 65536], not 1"),
    (dict(wdepth=131072), "wdepth must be in [2, 65536], not 131072"),
    (dict(adepth=100), "adepth must be a power of two, not 100"),
    (dict(adepth=0), "adepth must be in [2, 65536], not 0"),
    (dict(pdepth=48), "pdepth must be a power of two, not 48"),
    (dict(pdepth=8192), "pdepth must be in [2, 4096], not 8192"),
    (dict(tdepth=500), "tdepth must be a power of two, not 500"),
    (dict(tdepth=1), "tdepth must be in [2, 65536], not 1"),
    (dict(tdepth=131072), "tdepth must be in [2, 65536], not 131072"),
    (dict(mdepth=96), "mdepth must be a power of two, not 96"),
    (dict(mdepth=1), "mdepth must be in [2, 65536], not 1"),
    (dict(lanes=64, rows=4, adepth=8192),
     f"adepth * lanes (8192 * 64) must be at most 2**{ELEM_ADDR_BITS}"),
    (dict(data_bits=1), "data_bits must be in [2, 8], not 1"),
    (dict(data_bits=9), "data_bits must be in [2, 8], not 9"),
    (dict(acc_bits=15), "acc_bits must be in [16, 40], not 15"),
    (dict(acc_bits=41), "acc_bits must be in [16, 40], not 41"),
    (dict(data_bits=4, acc_bits=7), "acc_bits must be in [8, 40], not 7"),
    (dict(lanes=16.0), "lanes must be an integer, not 16.0"),
    (dict(rows="4"), "rows must be an integer, not '4'"),
    (dict(wdepth=None), "wdepth must be an integer, not None"),
    (dict(adepth=256.0), "adepth must be an integer, not 256.0"),
    (dict(act_banks=True), "act_banks must be an integer, not True"),
    (dict(lanes=True, rows=True), "lanes must be an integer, not True"),
    (dict(pdepth=False), "pdepth must be an integer, not False"),
    (dict(wbytes=2), "wbytes must be in [0, 1], not 2"),
    (dict(pv=2), "pv must be in [0, 1], not 2"),
    (dict(wtail=3), "wtail must be 0 or a power of two in [2, wdepth] (wdepth 1024"),
    (dict(wtail=1), "wtail must be 0 or a power of two in [2, wdepth]"),
    (dict(wtail=2048), "wtail must be 0 or a power of two in [2, wdepth]"),
    (dict(wdepth=65536, wtail=2), "at most 32768 with a tail"),
])
def test_invalid_field_names_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config(**kwargs)


def test_boundary_values_are_accepted():
    assert Config(lanes=2, rows=1).macs == 2
    assert Config(lanes=64, rows=64).macs == 4096
    assert Config(act_banks=1).act_banks == 1
    assert Config(act_banks=4).act_banks == 4
    assert Config(wdepth=2, adepth=2, pdepth=2).wdepth == 2
    assert Config(wdepth=65536, adepth=4096, pdepth=4096, tdepth=65536).pdepth == 4096
    assert Config(lanes=4, rows=1, adepth=65536).adepth == 65536       # 2**18 elements
    assert Config(tdepth=2).tdepth == 2
    assert Config(acc_bits=16).acc_bits == 16
    assert Config(acc_bits=40).acc_bits == 40
    assert Config(data_bits=2, acc_bits=4).data_bits == 2


def test_parse():
    assert Config.parse("lanes=8,rows=2") == Config(lanes=8, rows=2)
    assert Config.parse(" lanes = 8 , rows=2 ,") == Config(lanes=8, rows=2)
    assert Config.parse("wdepth=0x100,act_banks=1") == Config(wdepth=256, act_banks=1)
    assert Config.parse("") == Config()
    assert Config.parse("acc_bits=24,data_bits=6") == Config(data_bits=6, acc_bits=24)


@pytest.mark.parametrize("text, message", [
    ("lanes", "bad config item 'lanes': expected name=value"),
    ("foo=1", "bad config item 'foo=1': expected name=value"),
    ("lanes=8,bogus=3", "bad config item 'bogus=3'"),
    ("lanes=x", "config item lanes must be an integer, not 'x'"),
    ("rows=2.5", "config item rows must be an integer, not '2.5'"),
    ("lanes=", "config item lanes must be an integer, not ''"),
    ("lanes=10", "lanes must be a power of two, not 10"),
    ("lanes=2", "lanes (2) must be a multiple of rows (4)"),
    ("act_banks=3", "act_banks must be 1, 2 or 4, not 3"),
])
def test_parse_errors(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.parse(text)


def test_parse_error_lists_the_valid_names():
    with pytest.raises(ConfigError) as info:
        Config.parse("foo=1")
    assert ("acc_bits, act_banks, adepth, data_bits, lanes, mdepth, pdepth, pv, rdepth, rows, "
            "tdepth, "
            "wbytes, wdepth, wtail"
            in str(info.value))


def test_ident_values():
    assert Config().ident == "l16r4-w1024-a2x256-p64"
    assert Config(lanes=8, rows=2, wdepth=256, act_banks=1, adepth=64).ident == \
        "l8r2-w256-a1x64-p64"
    assert Config(data_bits=6, acc_bits=24).ident == "l16r4-w1024-a2x256-p64-d6c24"
    assert Config(acc_bits=40).ident == "l16r4-w1024-a2x256-p64-d8c40"
    assert Config(tdepth=64).ident == "l16r4-w1024-a2x256-p64-t64"
    assert Config(mdepth=1024).ident == "l16r4-w1024-a2x256-p64-m1024"
    assert Config(rdepth=512).ident == "l16r4-w1024-a2x256-p64-r512"
    assert Config(wbytes=0).ident == "l16r4-w1024-a2x256-p64-wb0"
    assert Config(pv=1).ident == "l16r4-w1024-a2x256-p64-pv1"
    assert Config(wtail=256).ident == "l16r4-w1024+256-a2x256-p64"
    assert Config(data_bits=6, acc_bits=24, tdepth=1024).ident == \
        "l16r4-w1024-a2x256-p64-d6c24-t1024"


def test_ident_differs_between_configs_and_is_a_directory_name(tmp_path):
    configs = [
        Config(),
        Config(lanes=8),
        Config(lanes=8, rows=2),
        Config(lanes=32, rows=4),
        Config(rows=2),
        Config(wdepth=512),
        Config(act_banks=1),
        Config(act_banks=4),
        Config(adepth=128),
        Config(pdepth=128),
        Config(data_bits=7),
        Config(data_bits=7, acc_bits=31),
        Config(acc_bits=24),
        Config(tdepth=256),
        Config(lanes=2, rows=1, wdepth=2, act_banks=1, adepth=2, pdepth=2, data_bits=2,
               acc_bits=4),
    ]
    idents = [cfg.ident for cfg in configs]
    assert len(set(idents)) == len(configs)
    for ident in idents:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", ident), ident
        (tmp_path / ident).mkdir()
        assert (tmp_path / ident).is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(idents)


def test_equal_configs_have_equal_idents():
    assert Config.parse("lanes=8,rows=2").ident == Config(lanes=8, rows=2).ident


def test_build_dir_uses_ident(tmp_path):
    cfg = Config(lanes=8, rows=2)
    assert Config().build_dir() == pathlib.Path("build") / "l16r4-w1024-a2x256-p64"
    assert cfg.build_dir(tmp_path) == tmp_path / "l8r2-w1024-a2x256-p64"
    assert cfg.build_dir("out") == pathlib.Path("out/l8r2-w1024-a2x256-p64")


def test_weight_tail_address_space():
    """A tail of wtail words past wdepth: wwords addresses, one more address bit, and the
    addresses past the tail reach it again (the RTL's SplitBank decodes them so)."""
    import numpy as np
    cfg = Config(wdepth=8, wtail=2)
    assert (cfg.wwords, cfg.waddr_bits, cfg.ident) == (10, 4, "l16r4-w8+2-a2x256-p64")
    assert cfg.weight_bytes == 4 * 10 * 16
    assert [cfg.wphys(a) for a in range(18)] == list(range(10)) + [8, 9] * 3 + [0, 1]
    np.testing.assert_array_equal(cfg.wphys(np.arange(18)), [cfg.wphys(a) for a in range(18)])
    plain = Config(wdepth=8)
    assert (plain.wwords, plain.waddr_bits) == (8, 3)
    assert [plain.wphys(a) for a in (7, 8, 9, -1)] == [7, 0, 1, 7]
    assert Config.parse("wdepth=4096,wtail=512").wwords == 4608
