"""The accelerator configuration: loaded from TOML, validated once, derived sizes consistent."""

from pathlib import Path

import pytest

from bebert.config import AccelConfig, ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["default", "small", "wide"])
def test_shipped_configs_load_and_are_consistent(name):
    c = AccelConfig.from_toml(CONFIGS / f"{name}.toml")
    assert c.name == name
    for buf in ("abuf", "wbuf", "pbuf"):
        assert c.entry_bits[buf] % c.bus_bits == 0
        assert c.entries(buf) * c.entry_bytes(buf) == getattr(c, f"{buf}_bytes")
        assert c.beats_per_entry(buf) * c.bus_bits == c.entry_bits[buf]
    assert c.binary_ops_per_cycle == c.pe_rows * c.pe_cols * c.xnor_width


def test_default_toml_matches_builtin_default():
    assert AccelConfig.from_toml(CONFIGS / "default.toml") == AccelConfig()


def test_config_is_frozen_and_round_trips_through_dict():
    c = AccelConfig()
    with pytest.raises(Exception):
        c.pe_rows = 8  # type: ignore[misc]
    assert AccelConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("change, words", [
    ({"pe_rows": 3}, "pe_rows"),
    ({"pe_cols": 0}, "pe_cols"),
    ({"xnor_width": 48}, "xnor_width"),
    ({"act_bits": (9,)}, "act_bits"),
    ({"act_bits": (0, 4)}, "act_bits"),
    ({"act_bits": ()}, "act_bits"),
    ({"vec_lanes": 0}, "vec_lanes"),
    ({"vec_lanes": 12}, "vec_lanes"),
    ({"vec_lanes": 128}, "vec_lanes"),
    ({"pe_rows": 64, "pe_cols": 64, "xnor_width": 32, "dram_bytes_per_cycle": 8}, "xnor_width"),
    ({"dram_bytes_per_cycle": 12}, "dram_bytes_per_cycle"),
    ({"abuf_bytes": 100}, "abuf_bytes"),
    ({"abuf_bytes": 3 * 2048}, "power of two"),
    ({"queue_depth": 1}, "queue_depth"),
    ({"clock_mhz": -5.0}, "clock_mhz"),
    ({"pe_cols": 2, "dram_bytes_per_cycle": 32}, "bus width"),
])
def test_invalid_values_are_refused_with_one_line_naming_the_field(change, words):
    with pytest.raises(ConfigError) as e:
        AccelConfig().replace(**change)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_unknown_keys_and_bad_files_are_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[accelerator]\npe_rowz = 4\n")
    with pytest.raises(ConfigError, match="unknown parameter.*pe_rowz"):
        AccelConfig.from_toml(bad)
    bad.write_text("[accelerator\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        AccelConfig.from_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        AccelConfig.from_toml(tmp_path / "missing.toml")
    bad.write_text('[accelerator]\npe_rows = "four"\n')
    with pytest.raises(ConfigError, match="pe_rows must be an integer"):
        AccelConfig.from_toml(bad)


@pytest.mark.parametrize("text, words", [
    ("accelerator = 5\n", "'accelerator' must be a table"),
    ("[accelerator]\nact_bits = [4.5]\n", "act_bits must be a list of integers"),
    ('[accelerator]\nact_bits = ["4"]\n', "act_bits must be a list of integers"),
    ('[accelerator]\nact_bits = "4"\n', "act_bits must be a list of integers"),
    ("", "sets no accelerator parameter"),
    ("[accelerator]\n", "sets no accelerator parameter"),
    ('[accelerator]\nname = "x"\n', "sets no accelerator parameter"),
    ("[accelerator]\npe_rows = 4\n[extra]\nx = 1\n", "unknown table or key(s) extra"),
    ("[accelerator]\nclock_mhz = true\n", "clock_mhz"),
    ("[accelerator]\nclock_mhz = nan\n", "clock_mhz"),
    ("[accelerator]\nclock_mhz = inf\n", "clock_mhz"),
    ("[accelerator]\npe_rows = 4.0\n", "pe_rows must be an integer"),
    ("[accelerator]\nname = 3\npe_rows = 4\n", "name must be a non-empty string"),
])
def test_numbers_are_numbers_and_an_empty_or_odd_file_is_no_config(tmp_path, text, words):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        AccelConfig.from_toml(f)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_any_activation_width_from_1_to_8_is_a_machine_width():
    c = AccelConfig().replace(act_bits=(3, 5, 6, 7))
    assert c.act_bits == (3, 5, 6, 7)
    assert AccelConfig().act_bits == tuple(range(1, 9))


def test_a_v2_config_with_an_output_buffer_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown parameter.*obuf_bytes"):
        AccelConfig.from_dict({"obuf_bytes": 16384})
    with pytest.raises(ConfigError, match="unknown parameter.*obuf_bytes"):
        AccelConfig().replace(obuf_bytes=64)
