"""The energy model: tables (presets, TOML, validation) and the estimate of a run.

The hand-computed case runs on configs/small.toml (4 x 4 PEs of 32 bits, L = 4, 8-byte bus,
100 MHz; ABUF / WBUF 4096 B with 16-byte entries, PBUF 1024 B with 32-byte entries, OBUF
1024 B with 16-byte entries) and prices it with the asic45 table.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.isa import gemm, halt, load, post, store
from bebert.program import Program
from bebert.sim import simulate
from bebert.sim.energy import (ASIC45, FPGA, PRESETS, UNITS, EnergyError, EnergyTable, estimate,
                               load_table, program_regions)
from bebert.sim.random_programs import dram_image_bytes, random_test_program

ROOT = Path(__file__).resolve().parents[1]
SMALL = AccelConfig.from_toml(ROOT / "configs" / "small.toml")

# LOAD wbuf 1 entry -> GEMM (2 planes x 1 word) -> POST -> STORE 4 entries -> HALT.
HAND = [
    load("wbuf", 0, 0, 1, "push_next"),
    gemm(0, 0, 1, 1, 2, True, True, "pop_prev"),
    post(0, 0, 0, 0, True, "push_next"),
    store(4096, 0, 4, "pop_prev"),
    halt(),
]


def hand_program(**meta) -> Program:
    return Program(config=SMALL, instrs=HAND, dram=np.zeros(dram_image_bytes(SMALL), np.uint8), meta=meta)


def test_hand_computed_program_cycles_and_energy():
    # Timing (docs/ARCHITECTURE.md; instruction j is queued at the end of cycle 2j + 1):
    # j  instruction               D             issues  executes  idle
    # 0  LOAD wbuf n=1 @push_next  4 + 1*2 = 6   2       3..8      9 (l2c from 9)
    # 1  GEMM bits=2 k=1 @pop_prev 2*1 + 2 = 4   9       10..13    14
    # 2  POST @push_next           4 + 2 = 6     14      15..20    21 (c2s from 21)
    # 3  STORE n=4 @pop_prev       1+4*2+4 = 13  21      22..34    35
    # 4  HALT decoded in 9. T = 35, cycles = 36.
    p = hand_program()
    r = simulate(p)
    assert r.cycles == 36
    # Energy with asic45, in pJ. SRAM per byte below 8 KB follows the 8 KB -> 32 KB segment
    # (x2 per x4 capacity, i.e. sqrt): 4096 B -> 1.25 / sqrt(2), 1024 B -> 1.25 / sqrt(8).
    s4k, s1k = 1.25 / math.sqrt(2), 1.25 / math.sqrt(8)
    expect = {
        "pe_array": 2 * 1 * 4 * 4 * 32 * 0.005,  # bits*k*rows*cols*W binary MACs = 5.12
        "accumulators": 2 * 1 * 4 * 4 * 0.1,  # one update per PE per GEMM cycle = 3.2
        "post": 4 * 4 * 3.5,  # rows*cols elements = 56
        "sram_abuf_read": 2 * 16 * s4k,  # one 16-byte entry per GEMM cycle
        "sram_abuf_write": 0.0,
        "sram_wbuf_read": 2 * 16 * s4k,
        "sram_wbuf_write": 16 * s4k,  # the LOAD
        "sram_pbuf_read": 32 * s1k,  # POST reads one 32-byte entry
        "sram_pbuf_write": 0.0,
        "sram_obuf_read": 4 * 16 * s1k,  # STORE
        "sram_obuf_write": 4 * 16 * s1k,  # POST writes pe_rows entries
        "dram_read": 16 * 243.75,  # 3900
        "dram_write": 64 * 243.75,  # 15600
        "control": 5 * 25.0 + 36 * 5.0,  # 5 words fetched + 36 cycles = 305
        "leakage": 36 * 100.0,  # 3600
    }
    e = estimate(p, r, ASIC45)
    assert set(e.by_unit) == set(UNITS)
    for u, pj in expect.items():
        assert e.by_unit[u] == pytest.approx(pj * 1e-12, rel=1e-12, abs=1e-30), u
    # 5.12 + 3.2 + 56 + 19500 + 305 + 3600 = 23469.32, + 100*sqrt(2) (SRAM) = 23610.7414 pJ
    assert e.total_j == pytest.approx((23469.32 + 100 * math.sqrt(2)) * 1e-12, rel=1e-12)
    assert e.total_j == pytest.approx(23610.7414e-12, rel=1e-8)
    assert e.per_inference_j == e.total_j and e.by_region == {"program": e.total_j}


def test_totals_equal_the_sum_of_their_breakdowns_on_random_programs():
    rng = np.random.default_rng(5)
    for case in range(12):
        config = (SMALL, AccelConfig())[case % 2]
        p = random_test_program(rng, config, int(rng.integers(1, 120)), tokens=bool(case % 3))
        n = len(p.instrs)
        cuts = sorted(set(int(c) for c in rng.integers(1, n, size=3))) if n > 1 else []
        bounds = [0, *cuts, n]
        regions = [{"name": f"r{i}", "start": a, "end": b, "member": i % 2}
                   for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
        p = dataclasses.replace(p, meta={"regions": regions})
        r = simulate(p)
        for table in PRESETS.values():
            e = estimate(p, r, table)
            assert e.total_j == pytest.approx(sum(e.by_unit.values()), rel=1e-12)
            assert e.total_j == pytest.approx(sum(e.by_region.values()), rel=1e-12)
            for reg in e.regions:
                assert reg.energy_j == pytest.approx(sum(reg.by_unit.values()), rel=1e-12)
            for u in UNITS:
                assert e.by_unit[u] == pytest.approx(sum(reg.by_unit[u] for reg in e.regions), rel=1e-12, abs=1e-30)
            assert all(v >= 0 for v in e.by_unit.values()) and e.total_j > 0


def test_per_cycle_energy_is_split_over_regions_by_busy_cycles():
    # r0 = LOAD + GEMM (busy 6 + 4 = 10), r1 = POST + STORE + HALT (6 + 13 = 19).
    p = hand_program(regions=[{"name": "r0", "start": 0, "end": 2}, {"name": "r1", "start": 2, "end": 5}])
    e = estimate(p, simulate(p), ASIC45)
    r0, r1 = e.regions
    assert (r0.busy_cycles, r1.busy_cycles) == (10, 19)
    assert r0.by_unit["leakage"] == pytest.approx(36 * 100e-12 * 10 / 29)
    assert r0.by_unit["dram_read"] == pytest.approx(16 * 243.75e-12) and r1.by_unit["dram_read"] == 0
    assert r0.by_unit["control"] == pytest.approx((2 * 25 + 36 * 5 * 10 / 29) * 1e-12)


def test_inferences_divide_the_energy():
    p = hand_program(inferences=4)
    e = estimate(p, simulate(p), ASIC45)
    assert e.per_inference_j == pytest.approx(e.total_j / 4)


def test_estimate_rejects_a_result_of_another_program():
    p = hand_program()
    other = Program(config=SMALL, instrs=HAND[:1] + HAND[-1:], dram=p.dram)
    with pytest.raises(EnergyError, match="does not belong"):
        estimate(p, simulate(other), ASIC45)


@pytest.mark.parametrize("regions, msg", [
    ([], "non-empty list"),
    ([{"name": "a", "start": 0, "end": 3}], "must cover"),
    ([{"name": "a", "start": 0, "end": 2}, {"name": "b", "start": 3, "end": 5}], "must start at 2"),
    ([{"name": "a", "start": 0, "end": 2}, {"name": "a", "start": 2, "end": 5}], "new non-empty string"),
    ([{"name": "a", "start": 0, "end": 5, "member": -1}], "member"),
    ([{"name": "a", "start": 0, "end": 5, "layer": 1}], "table of name"),
])
def test_bad_regions_raise_one_line(regions, msg):
    with pytest.raises(EnergyError, match=msg) as e:
        program_regions(hand_program(regions=regions))
    assert "\n" not in str(e.value)


def test_program_without_regions_is_one_region_named_after_its_kind():
    assert [r.name for r in program_regions(hand_program())] == ["program"]
    assert program_regions(hand_program(kind="gemm"))[0].name == "gemm"


# -- tables -----------------------------------------------------------------------------
def test_sram_interpolation_passes_through_horowitz_points():
    for cap, pj64 in ((8192, 10), (32768, 20), (1 << 20, 100)):
        assert ASIC45.sram_pj_per_byte(cap) == pytest.approx(pj64 / 8)
        assert ASIC45.sram_pj_per_byte(cap, write=True) == pytest.approx(pj64 / 8)
    assert 2.5 < ASIC45.sram_pj_per_byte(65536) < 12.5
    assert ASIC45.sram_pj_per_byte(2048) < ASIC45.sram_pj_per_byte(4096) < 1.25


def test_presets_are_the_shipped_toml_files():
    for name, table in PRESETS.items():
        assert EnergyTable.from_toml(ROOT / "configs" / "energy" / f"{name}.toml") == table
        assert load_table(name) is table
    assert load_table(None) is ASIC45
    assert load_table(str(ROOT / "configs" / "energy" / "fpga.toml")) == FPGA


@pytest.mark.parametrize("table", list(PRESETS.values()), ids=list(PRESETS))
def test_toml_round_trip(tmp_path, table):
    path = tmp_path / "t.toml"
    path.write_text(table.to_toml())
    assert EnergyTable.from_toml(path) == table


def test_base_preset_fills_missing_keys(tmp_path):
    path = tmp_path / "cheap_dram.toml"
    path.write_text('base = "asic45"\ndram_read_pj_per_byte = 20.0\n')
    t = load_table(str(path))
    assert t.name == "cheap_dram" and t.dram_read_pj_per_byte == 20.0
    assert t.description == "based on asic45"
    assert dataclasses.replace(t, name="asic45", dram_read_pj_per_byte=243.75, description=ASIC45.description) == ASIC45


@pytest.mark.parametrize("text, msg", [
    ('base = "asic45"\nxnor_bits = 1.0\n', "unknown key.*xnor_bits"),
    ('base = "asic45"\n[sram]\nsize = [1]\n', "unknown key.*sram.size"),
    ('base = "asic45"\nleakage_pj_per_cycle = -1.0\n', "leakage_pj_per_cycle must be finite numbers >= 0"),
    ('base = "asic45"\npost_pj_per_element = "x"\n', "post_pj_per_element"),
    ('base = "asic45"\n[sram]\nread_pj_per_byte = [1.0, -2.0, 3.0]\n', "sram_read_pj_per_byte"),
    ('base = "asic45"\n[sram]\nbytes = [4096, 1024, 8192]\n', "sram_bytes must increase"),
    ('base = "asic45"\n[sram]\nbytes = [1024]\n', "one value per sram_bytes entry"),
    ('base = "asic7"\n', "not a preset"),
    ('name = "x"\nxnor_popcount_pj_per_bit = 0.1\n', "missing key"),
    ('name = = 1', "not valid TOML"),
])
def test_bad_tables_raise_one_line_value_errors(tmp_path, text, msg):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(EnergyError, match=msg) as e:
        load_table(str(path))
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_missing_table_file(tmp_path):
    with pytest.raises(EnergyError, match="energy table not found"):
        load_table(str(tmp_path / "nope.toml"))


def test_tables_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ASIC45.leakage_pj_per_cycle = 0.0
