"""The area model gives every design point its LUTs and block RAMs without synthesis: it grows
with the array and the vector lanes, stays within its stated error of the Yosys figures it was
calibrated on, and makes area an objective of the fast sweep."""

import pytest

from bebert.cli import main
from bebert.config import AccelConfig
from bebert.dse import area_model as am
from bebert.dse import load_space, run_sweep


def base(**changes) -> AccelConfig:
    return am.calibration_config("small4").replace(dram_bytes_per_cycle=4, **changes)  # a 32-bit bus fits 1 row


@pytest.mark.parametrize("axis, values", [("pe_rows", [1, 2, 4, 8, 16, 32]), ("vec_lanes", [1, 2, 4, 8, 16, 64]),
                                          ("pe_cols", [1, 4, 16, 32]), ("xnor_width", [32, 64, 128])])
def test_the_model_grows_with_the_array_and_the_lanes(axis, values):
    other = {"pe_cols": 16} if axis != "pe_cols" else {}
    areas = [am.modelled_area(base(**other, **{axis: v})) for v in values]
    luts = [a.luts for a in areas]
    assert luts == sorted(luts) and len(set(luts)) == len(luts), (axis, luts)
    assert [a.bram36 for a in areas] == sorted(a.bram36 for a in areas)


def test_each_block_is_within_the_stated_error_of_yosys_at_the_calibration_points():
    for config in ("default", "small4"):
        cfg = am.calibration_config(config)
        blocks: dict[str, tuple[float, int]] = {}
        for m in (m for m in am.CALIBRATION if m.config == config):
            block = am.PARTS[m.parts[0]][0]
            model, yosys = blocks.get(block, (0.0, 0))
            blocks[block] = (model + am.predict(cfg, m.parts), yosys + m.luts)
        assert set(blocks) == set(am.BLOCKS)  # every block measured on both
        for block, (model, yosys) in blocks.items():
            assert abs(model / yosys - 1) * 100 <= am.BLOCK_ERROR_PCT, (config, block, model, yosys)
        est = am.modelled_area(cfg)
        yosys_total = sum(y for _, y in blocks.values())
        assert abs(est.luts / yosys_total - 1) * 100 <= am.TOTAL_ERROR_PCT
        assert est.blocks == {b: round(m) for b, (m, _) in blocks.items()}


def test_buffers_take_block_rams_as_yosys_maps_them():
    # default ABUF: 1,024 entries of 1,024 bits -> 57 RAMB18; WBUF: 512 x 1,024 -> 29 RAMB18
    assert am.ram_bram36(1024, 1024) == 57 / 2 and am.ram_bram36(1024, 512) == 29 / 2
    assert am.ram_bram36(128, 256) == 2  # small ABUF / WBUF: 2 RAMB36 each
    assert am.bram36(am.calibration_config("small4")) == 11  # Yosys: 9 RAMB36 + 4 RAMB18


def test_every_part_needs_a_calibration_figure():
    with pytest.raises(ValueError, match="no calibration figure covers part"):
        am.fit(tuple(m for m in am.CALIBRATION if m.parts != ("control",)))


def test_the_shipped_small_space_trades_array_rows_against_vector_lanes(tmp_path):
    space = load_space("space_small")
    assert space.minimize == ("latency_s", "energy_per_inference_j", "luts_model") and not space.area
    r = run_sweep(space, tmp_path / "d", jobs=2, progress=False)
    assert r.failed == 0 and len(r.front) >= 3
    cycles = {(x["pe_rows"], x["vec_lanes"]): x["cycles"] for x in r.rows}
    rows, lanes = sorted({k[0] for k in cycles}), sorted({k[1] for k in cycles})
    assert cycles[(rows[0], lanes[-1])] > cycles[(rows[-1], lanes[-1])]  # more rows: faster, with lanes to spare
    assert cycles[(rows[-1], lanes[0])] > cycles[(rows[-1], lanes[-1])]  # more lanes: faster, on a big array
    assert all(x["luts_model"] == am.modelled_area(_config(space, x)).luts for x in r.rows)


def _config(space, row):
    return space.base.replace(pe_rows=row["pe_rows"], vec_lanes=row["vec_lanes"])


def test_luts_without_yosys_is_the_models_column_and_says_so(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[workload]\nmodel = "gemm:8,64,32,4"\n[accelerator]\nbase = "small"\n[sweep]\nvec_lanes = [1, 4]\n'
                 '[pareto]\nminimize = ["latency_s", "luts"]\n')
    space = load_space(p)
    assert space.minimize == ("latency_s", "luts_model")
    rows = run_sweep(space, tmp_path / "d", progress=False).rows
    assert all("luts" not in x for x in rows) and rows[0]["luts_model"] < rows[1]["luts_model"]


@pytest.mark.parametrize("text, words", [
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[sweep]\nvec_lanes = [0, 4]\n', "vec_lanes must be positive, got 0"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[sweep]\nvec_lanes = [3]\n', "vec_lanes must be a power of two"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[pareto]\nminimize = ["ffs"]\n', "ffs needs [workload] area = true"),
])
def test_a_bad_lane_count_or_an_unmodelled_area_objective_is_one_line(capsys, tmp_path, text, words):
    space = tmp_path / "bad.toml"
    space.write_text(text)
    code = main(["dse", "--space", str(space), "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and words in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_the_calibration_figures_are_of_the_shipped_configurations():
    """The Yosys figures hold for the configurations they were measured on: a shipped config
    that changes its array or lanes needs a new calibration."""
    import json
    import re
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    small = json.loads((results / "resources_small4.json").read_text())
    cfg = am.calibration_config("small4")
    assert small["array"] == {"pe_rows": cfg.pe_rows, "pe_cols": cfg.pe_cols, "xnor_width": cfg.xnor_width}
    lanes = [m for m in small["modules"] if re.fullmatch(r"bebert_accel\.vector\.unit\.engine\.lanes\.lane\d+", m)]
    assert len(lanes) == cfg.vec_lanes
    default = am.calibration_config("default")
    rep = json.loads((results / "resources.json").read_text())["configs"]["default"]
    assert rep["array"] == {"pe_rows": default.pe_rows, "pe_cols": default.pe_cols, "xnor_width": default.xnor_width}
    assert rep["config"] == "default" and default.vec_lanes == 16  # the config the figures were measured on
    assert (default.pe_rows, default.pe_cols, default.xnor_width) == (16, 16, 64)  # COMPUTE / OUTPUT's figures
