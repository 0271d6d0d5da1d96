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
from bebert.isa import gemm, halt, load, post, postcfg, vec
from bebert.program import Program
from bebert.sim import simulate
from bebert.sim.energy import (ASIC45, FPGA, PRESETS, UNITS, EnergyError, EnergyTable, estimate,
                               load_table, program_regions)
from bebert.sim.random_programs import ALL_FEATURES, RTL_FEATURES, random_test_program
from bebert.vector import VecFn, io_word, vec_bytes, vec_cycles
from conftest import small4_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = small4_config()  # small with 4 lanes: what the hand computations assume

# LOAD wbuf 1 entry -> GEMM (2 planes x 1 word) -> GEMM in AND mode (2 x 2 planes, snap) -> POSTCFG
# -> POST (stream, 4 x 4 int32) -> VEC REQUANT (4 x 4 int32) -> HALT.
VEC_IO = io_word(True, False, 4, 4)
HAND = [
    load("wbuf", 0, 0, 1, push=["compute"]),
    gemm(0, 0, 1, 1, 2, True, True, pop=["load"]),
    gemm(0, 0, 1, 1, 2, True, False, mode=1, wbits=2, wstride=1, wsigned=True, snap=True, push=["output"]),
    postcfg(0, 0, True, 0, elem=2, pitch=64),
    post(0, 0x400, 4, 4, pop=["compute"], push=["vec"]),
    vec(VecFn.REQUANT, 0x800, 4, 4, pop=["output"], io=VEC_IO),
    halt(),
]


def hand_program(**meta) -> Program:
    return Program(config=SMALL, instrs=HAND, dram=np.zeros(1 << 13, np.uint8), meta=meta)


def test_hand_computed_program_cycles_and_energy():
    # Timing (docs/ARCHITECTURE.md; instruction j is queued at the end of cycle 2j + 1):
    # j  instruction                      D                          issues  executes  idle / token
    # 0  LOAD wbuf n=1 @push=compute      4 + 1*2 = 6                2       3..8      9
    # 1  GEMM bits=2 k=1 @pop=load        2                          9       10..11    12
    # 2  GEMM AND 2x2 planes snap         2*2*1 + 3 = 7              12      13..19    20
    # 3  POSTCFG                          1                          8       9         10
    # 4  POST 4x4 int32 @push=vec         4 + 4 columns * 2 beats + L = 16   20  21..36   37
    # 5  VEC REQUANT 4x4                  bebert.vector.vec_cycles   37      38..37+D
    # 6  HALT decoded in 13; T = 38 + D, cycles = 39 + D.
    d_vec = vec_cycles(VecFn.REQUANT, 4, 4, 0, 0, VEC_IO, SMALL)
    vrd, vwr = vec_bytes(VecFn.REQUANT, 4, 4, 0, 0, VEC_IO, SMALL)
    p = hand_program()
    r = simulate(p)
    cycles = 39 + d_vec
    assert r.cycles == cycles
    assert (r.busy["gemm"], r.busy["post"], r.busy["vector_unit"]) == (2 + 7, 1 + 16, d_vec)
    # Energy with asic45, in pJ. SRAM per byte below 8 KB follows the 8 KB -> 32 KB segment
    # (x2 per x4 capacity, i.e. sqrt): 4096 B -> 1.25 / sqrt(2), 1024 B -> 1.25 / sqrt(8).
    s4k, s1k = 1.25 / math.sqrt(2), 1.25 / math.sqrt(8)
    expect = {
        "pe_array": 2 * 4 * 4 * 32 * 0.005,  # 2 GEMM cycles x rows*cols*W XNOR MACs
        "pe_array_and": 4 * 4 * 4 * 32 * 0.004375,  # the AND-mode GEMM's 4 cycles
        "accumulators": 6 * 4 * 4 * 0.1,  # one update per PE per GEMM cycle
        "post": 4 * 4 * 3.5,  # rows*cols elements
        "vector": 4 * 4 * 1 * 6.7,  # rows * cols * passes lane operations
        "sram_abuf_read": 6 * 16 * s4k,  # one 16-byte entry per GEMM cycle
        "sram_abuf_write": 0.0,
        "sram_wbuf_read": 6 * 16 * s4k,
        "sram_wbuf_write": 16 * s4k,  # the LOAD
        "sram_pbuf_read": 32 * s1k,  # POST reads one 32-byte entry
        "sram_pbuf_write": 0.0,
        "dram_read": (16 + vrd) * 243.75,  # LOAD + the vector unit's reads
        "dram_write": (64 + vwr) * 243.75,  # POST + the vector unit's writes
        "control": 7 * 25.0 + cycles * 5.0,  # 7 words fetched + a clock per cycle
        "leakage": cycles * 100.0,
    }
    e = estimate(p, r, ASIC45)
    assert set(e.by_unit) == set(UNITS) == set(expect)
    for u, pj in expect.items():
        assert e.by_unit[u] == pytest.approx(pj * 1e-12, rel=1e-12, abs=1e-30), u
    assert e.total_j == sum(e.by_unit.values())  # exactly: the total is that sum
    assert e.per_inference_j == e.total_j and e.by_region == {"program": e.total_j}


def test_totals_equal_the_sum_of_their_breakdowns_on_random_programs():
    rng = np.random.default_rng(5)
    for case in range(12):
        config = (SMALL, AccelConfig())[case % 2]
        p = random_test_program(rng, config, int(rng.integers(1, 120)), tokens=bool(case % 3),
                                features=ALL_FEATURES if case % 4 < 2 else RTL_FEATURES)
        n = len(p.instrs)
        cuts = sorted(set(int(c) for c in rng.integers(1, n, size=3))) if n > 1 else []
        bounds = [0, *cuts, n]
        regions = [{"name": f"r{i}", "start": a, "end": b, "member": i % 2}
                   for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
        p = dataclasses.replace(p, meta={"regions": regions})
        r = simulate(p)
        for table in PRESETS.values():
            e = estimate(p, r, table)
            assert e.total_j == sum(e.by_unit.values())  # exactly
            assert e.total_j == pytest.approx(sum(e.by_region.values()), rel=1e-12)
            for reg in e.regions:
                assert reg.energy_j == sum(reg.by_unit.values())  # exactly
            for u in UNITS:
                assert e.by_unit[u] == pytest.approx(sum(reg.by_unit[u] for reg in e.regions), rel=1e-12, abs=1e-30)
            assert all(v >= 0 for v in e.by_unit.values()) and e.total_j > 0


def test_per_cycle_energy_is_split_over_regions_by_busy_cycles():
    # r0 = LOAD + GEMM (busy 6 + 2 = 8), r1 = the rest (7 + 1 + 16 + D_vec).
    d_vec = vec_cycles(VecFn.REQUANT, 4, 4, 0, 0, VEC_IO, SMALL)
    vrd, _ = vec_bytes(VecFn.REQUANT, 4, 4, 0, 0, VEC_IO, SMALL)
    p = hand_program(regions=[{"name": "r0", "start": 0, "end": 2}, {"name": "r1", "start": 2, "end": 7}])
    r = simulate(p)
    e = estimate(p, r, ASIC45)
    r0, r1 = e.regions
    busy1 = 7 + 1 + 16 + d_vec
    assert (r0.busy_cycles, r1.busy_cycles) == (8, busy1)
    assert r0.by_unit["leakage"] == pytest.approx(r.cycles * 100e-12 * 8 / (8 + busy1))
    assert r0.by_unit["dram_read"] == pytest.approx(16 * 243.75e-12)
    assert r1.by_unit["dram_read"] == pytest.approx(vrd * 243.75e-12)  # the vector unit's reads
    assert r0.by_unit["control"] == pytest.approx((2 * 25 + r.cycles * 5 * 8 / (8 + busy1)) * 1e-12)
    assert r0.by_unit["vector"] == 0 and r1.by_unit["vector"] == pytest.approx(4 * 4 * 6.7e-12)


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
    ([{"name": "a", "start": 0, "end": 2}, {"name": "b", "start": 3, "end": 7}], "must start at 2"),
    ([{"name": "a", "start": 0, "end": 2}, {"name": "a", "start": 2, "end": 7}], "new non-empty string"),
    ([{"name": "a", "start": 0, "end": 7, "member": -1}], "member"),
    ([{"name": "a", "start": 0, "end": 7, "stage": 1}], "table of name"),
    ([{"name": "a", "start": 0, "end": 7, "layer": "l0"}], "layer must be an integer"),
    ([{"name": "a", "start": 0, "end": 7, "kind": ""}], "kind must be a non-empty string"),
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
