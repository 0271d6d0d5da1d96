"""The area model (bebert.dse.area_model) against Yosys, block by block.

    python bench/bench_area_model.py [--out bench/results/area_model.json]

For each calibration configuration (default, small4): every block's LUTs from the model and
from Yosys (the figures of `area_model.CALIBRATION`, summed per block), the % error, the
total, and the block RAMs. Then a held-out test: the model fitted to small's figures alone
predicts default (4 x 4 x 32 with 4 lanes -> 16 x 16 x 64 with 16 lanes, a 33x larger PE
array). Nothing is synthesised here (seconds): the Yosys figures are those recorded in
bench/results/ (resources.json for default, resources_small4.json for small with 4 lanes, both
from `bebert.hw.resources` on the same RTL) and checked against them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bebert.dse import area_model as am
from bebert.files import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def reports() -> dict[str, dict]:
    """The Yosys report of each calibration configuration (`bebert.hw.resources`, one RTL)."""
    return {"default": json.loads((RESULTS / "resources.json").read_text())["configs"]["default"],
            "small4": json.loads((RESULTS / "resources_small4.json").read_text())}


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


def file_checks(reps: dict[str, dict]) -> dict[str, bool]:
    """The calibration table against the Yosys reports it was copied from."""
    control = ("compute_control", "control", "fetch", "load_stage", "queues", "tokens", "vector_stage")
    checks = {}
    for name, rep in reps.items():
        want = {b: v["luts_total"] for b, v in rep["blocks"].items()}
        have = yosys_blocks(name)
        checks[f"{name} total == its report's total"] = sum(have.values()) == rep["total"]["luts_total"]
        checks[f"{name} blocks == its report's blocks"] = all(
            have[b] == want[b] for b in ("vector_unit", "output_path", "pbuf", "popcount_array", "bitserial_accumulator"))
        checks[f"{name} control == its control blocks"] = have["control"] == sum(want[b] for b in control)
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(RESULTS / "area_model.json"))
    a = ap.parse_args(argv)

    coef = am.coefficients()
    fitted = {c: compare(c, coef) for c in ("default", "small4")}
    reps = reports()
    for c in fitted:  # block RAMs: RAMB36 + RAMB18 / 2
        fitted[c]["bram36"] = {"model": am.bram36(am.calibration_config(c)), "yosys": reps[c]["total"]["bram36_equiv"]}
    held_out = compare("default", am.fit(tuple(m for m in am.CALIBRATION if m.config == "small4")))
    doc = {
        "what": "bebert.dse.area_model against Yosys 0.23 synth_xilinx (per module, the RTL of resources.json and "
                "resources_small4.json): LUTs (luts_total) per block and in total, block RAMs (RAMB36 equivalents)",
        "calibrated": fitted,
        "held_out_default_from_small": held_out | {
            "note": "the model fitted to small's figures alone (4x4x32 array, 4 lanes) predicting default "
                    "(16x16x64, 16 lanes)"},
        "max_block_error_pct": max(abs(b["error_pct"]) for f in fitted.values() for b in f["blocks"].values()),
        "coefficients": {p: round(v, 4) for p, v in coef.items()},
        "parts": {p: b for p, (b, _) in am.PARTS.items()},
        "calibration_matches_reports": file_checks(reps),
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
