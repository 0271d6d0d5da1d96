"""The ensemble vote on the device (issue 13): every model/vote.py method's kernel (VOTE samme /
samme.r, VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN), its cycles and energy per inference against the
member count, on the shipped configurations, and the RTL's cycles beside them.

    python bench/bench_vote.py [--out bench/results/vote.json] [--no-rtl]

For 1, 3, 4, 16 and 64 members (the class votes: 2 labels, SST-2's; 3, MNLI's; STS-B's mean /
median: 1) it reads `vec_cycles` (what the simulator charges) and `vec_elementwise_ops` /
`vec_bytes` priced with the 45 nm table (lane operations and DRAM bytes, not the control and
leakage of the cycles), and on `small` runs random instances of every method with 3 and 16
members on the RTL vector unit (Amaranth's simulator, tests/vec_dram.py) to record that its
cycles are the formula's and its bytes run_vec's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bebert.config import AccelConfig  # noqa: E402
from bebert.files import atomic_write, to_json  # noqa: E402
from bebert.vector import VOTE_KERNEL_OF, vec_bytes, vec_cycles, vec_elementwise_ops  # noqa: E402

MEMBERS = (1, 3, 4, 16, 64)
METHODS = ("samme", "samme.r", "average", "mean", "median")


def labels_of(method: str) -> tuple[int, ...]:
    return (1,) if method in ("mean", "median") else (2, 3)


def formula_rows(cfg: AccelConfig, table) -> list[dict]:
    out = []
    for method in METHODS:
        fn = VOTE_KERNEL_OF[method]
        for labels in labels_of(method):
            for m in MEMBERS:
                if (m + 1) * labels > cfg.vec_row_elems and method not in ("samme", "samme.r"):
                    continue
                cyc = vec_cycles(fn, 1, labels, 0, m, 0, cfg)
                rd, wr = vec_bytes(fn, 1, labels, 0, m, 0, cfg)
                ops = vec_elementwise_ops(fn, 1, labels, m)
                pj = (ops * table.vector_pj_per_lane_op + rd * table.dram_read_pj_per_byte
                      + wr * table.dram_write_pj_per_byte)
                out.append({"method": method, "kernel": fn.name, "members": m, "labels": labels, "cycles": cyc,
                            "us": round(cyc / cfg.clock_mhz, 3), "dram_bytes": rd + wr,
                            "energy_nj": round(pj / 1000, 3)})
    return out


def rtl_rows(cfg: AccelConfig) -> list[dict]:
    from vec_cases import vote_case
    from vec_dram import run_units

    todo = [(m, method) for m in (3, 16) for method in METHODS]
    cases = [vote_case(cfg, 7000 + m, rows=1, members=m, labels=labels_of(method)[0], method=method)
             for m, method in todo]
    t0 = time.perf_counter()
    res = run_units(cfg, [(c.dram, c.args) for c in cases])
    wall = time.perf_counter() - t0
    out = []
    for (_, method), c, r in zip(todo, cases, res):
        a = c.args
        exact = bool((r["dram"] == c.golden()).all())
        out.append({"members": a["aux"], "labels": a["cols"], "method": method,
                    "rtl_cycles": r["cycles"], "vec_cycles": vec_cycles(a["fn"], 1, a["cols"], 0, a["aux"], 0, cfg),
                    "equal_to_run_vec": exact})
    return [dict(o, amaranth_sim_s=round(wall, 1)) for o in out]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "vote.json"))
    p.add_argument("--no-rtl", action="store_true")
    a = p.parse_args()
    from bebert.sim.energy import load_table

    table = load_table("asic45")
    res = {}
    for name in ("small", "default"):
        cfg = AccelConfig.from_toml(ROOT / "configs" / f"{name}.toml")
        res[name] = {"dram_latency_cycles": cfg.dram_latency_cycles, "clock_mhz": cfg.clock_mhz,
                     "vote": formula_rows(cfg, table)}
        for r in res[name]["vote"]:
            if r["labels"] in (1, 2):
                print(f"{name:8s} {r['method']:8s} {r['members']:3d} members: {r['cycles']:5d} cycles ({r['us']} us), "
                      f"{r['energy_nj']} nJ", flush=True)
    if not a.no_rtl:
        res["small"]["rtl"] = rtl_rows(AccelConfig.from_toml(ROOT / "configs" / "small.toml"))
        for r in res["small"]["rtl"]:
            print(f"small RTL {r['members']} members {r['method']}: {r['rtl_cycles']} cycles "
                  f"(formula {r['vec_cycles']}), equal to run_vec: {r['equal_to_run_vec']}", flush=True)
    atomic_write(Path(a.out), to_json(res))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
