"""The area model (bebert.dse.area_model) against Yosys, block by block.

    python bench/bench_area_model.py [--out bench/results/area_model.json]

For each calibration configuration (default, small): every block's LUTs from the model and
from Yosys (the figures of `area_model.CALIBRATION`, summed per block), the % error, the
total, and the block RAMs. Then a held-out test: the model fitted to small's figures alone
predicts default (4 x 4 x 32 with 4 lanes -> 16 x 16 x 64 with 16 lanes, a 33x larger PE
array). Nothing is synthesised here (seconds): the Yosys figures are those recorded in
bench/results/ (resources_v3_small.json, resources_v3_default_control.json,
vector_unit_resources.json) and checked against them where the files hold them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bebert.dse import area_model as am
from bebert.files import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# Yosys block RAMs (RAMB36 + RAMB18 / 2): small from its report; default: ABUF 57 and WBUF 29
# RAMB18 (resources_v3_default_control.json), the vector unit 18 RAMB36 + 30 RAMB18.
YOSYS_BRAM36 = {"small4": None, "default": 57 / 2 + 29 / 2 + 18 + 30 / 2}


def yosys_blocks(config: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in am.CALIBRATION:
        if m.config == config:
            block = am.PARTS[m.parts[0]][0]
            out[block] = out.get(block, 0) + m.luts
    return out


def compare(config: str, coef: dict[str, float]) -> dict:
    cfg = am.calibration_config(config)
    want = yosys_blocks(config)
    blocks = {}
    for block in am.BLOCKS:
        parts = tuple(p for p, (b, _) in am.PARTS.items() if b == block)
        model = am.predict(cfg, parts, coef)
        blocks[block] = {"model": round(model), "yosys": want[block],
                         "error_pct": round(100 * (model / want[block] - 1), 1)}
    model_total = sum(b["model"] for b in blocks.values())
    yosys_total = sum(want.values())
    return {"blocks": blocks, "total": {"model": model_total, "yosys": yosys_total,
                                        "error_pct": round(100 * (model_total / yosys_total - 1), 1)}}


def file_checks() -> dict[str, bool]:
    """The calibration table against the Yosys reports it was copied from."""
    small = json.loads((RESULTS / "resources_v3_small.json").read_text())
    vec = json.loads((RESULTS / "vector_unit_resources.json").read_text())
    ctrl = json.loads((RESULTS / "resources_v3_default_control.json").read_text())
    s = yosys_blocks("small4")
    d = yosys_blocks("default")
    small_blocks = {b: v["luts_total"] for b, v in small["blocks"].items()}
    control = ("compute_control", "control", "fetch", "load_stage", "queues", "tokens", "vector_stage")
    return {
        "small total == resources_v3_small.json total": sum(s.values()) == small["total"]["luts_total"],
        "small vector_unit / output_path / pbuf == its blocks": all(
            s[b] == small_blocks[b] for b in ("vector_unit", "output_path", "pbuf", "popcount_array",
                                              "bitserial_accumulator")),
        "small control == its control blocks": s["control"] == sum(small_blocks[b] for b in control),
        "default vector_unit == vector_unit_resources.json total": d["vector_unit"] == vec["total"]["luts"],
        "default control / pbuf == resources_v3_default_control.json": (
            d["control"] == sum(ctrl["blocks"][b]["luts_total"] for b in control)
            and d["pbuf"] == ctrl["blocks"]["pbuf"]["luts_total"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(RESULTS / "area_model.json"))
    a = ap.parse_args(argv)

    coef = am.coefficients()
    fitted = {c: compare(c, coef) for c in ("default", "small4")}
    for c in fitted:
        fitted[c]["bram36"] = {"model": am.bram36(am.calibration_config(c)), "yosys": YOSYS_BRAM36[c]}
    small_report = json.loads((RESULTS / "resources_v3_small.json").read_text())
    fitted["small4"]["bram36"]["yosys"] = small_report["total"]["bram36_equiv"]
    held_out = compare("default", am.fit(tuple(m for m in am.CALIBRATION if m.config == "small4")))
    doc = {
        "what": "bebert.dse.area_model against Yosys 0.23 synth_xilinx (per module, v3 RTL): LUTs (luts_total) "
                "per block and in total, block RAMs (RAMB36 equivalents)",
        "calibrated": fitted,
        "held_out_default_from_small": held_out | {
            "note": "the model fitted to small's figures alone (4x4x32 array, 4 lanes) predicting default "
                    "(16x16x64, 16 lanes)"},
        "max_block_error_pct": max(abs(b["error_pct"]) for f in fitted.values() for b in f["blocks"].values()),
        "coefficients": {p: round(v, 4) for p, v in coef.items()},
        "parts": {p: b for p, (b, _) in am.PARTS.items()},
        "calibration_matches_reports": file_checks(),
    }
    write_json(Path(a.out), doc, indent=1)
    for name, res in (("default", fitted["default"]), ("small4", fitted["small4"]),
                      ("default, fitted to small alone", held_out)):
        print(f"{name}: total {res['total']['model']:,} model vs {res['total']['yosys']:,} Yosys "
              f"({res['total']['error_pct']:+.1f} %)")
        for b, v in res["blocks"].items():
            print(f"  {b:24s} {v['model']:>8,} {v['yosys']:>8,}  {v['error_pct']:+6.1f} %")
    print(json.dumps(doc["calibration_matches_reports"], indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
