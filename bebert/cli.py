"""The `bebert` command line: one program, one subcommand per job.

    bebert compile --model gemm:M,K,N,ABITS --config CFG.toml --out DIR
    bebert run DIR                 golden executor -> DIR/outputs.npz
    bebert sim DIR --json          cycle-accurate simulation
    bebert rtl --config CFG --out DIR [--report] [--pnr ecp5]
    bebert verify DIR [--simulator verilator|icarus]   RTL under cocotb vs golden and simulator
    bebert disasm DIR              the instruction stream as text
    bebert stats TARGET --json     size and operation counts, reductions vs FP BERT
    bebert train / eval            (see `bebert train --help`)
    bebert dse --space S.toml --out DIR   design-space sweep: table, Pareto front, plots
    bebert demo                    the embedded default job

Bad input ends with one line on stderr and exit status 2 (set BEBERT_DEBUG=1 for the
traceback); a program that cannot run (`bebert.program.ProgramRejected`: an access out of
range, no HALT, a deadlock) is one line and exit status 1, the same line from run, sim and
verify. Imports are lazy so that a quick command does not pay for PyTorch.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILED = 1


class UserError(ValueError):
    """A problem with what the user asked for; printed as one line."""


def _config(path: str | None):
    """--config: a TOML file or a shipped name (small, wide); none: the shipped default."""
    from bebert.api import load_config

    return load_config(path)


def _print_json(obj) -> None:
    from bebert.files import to_json

    print(to_json(obj))  # strict JSON: a non-finite figure prints as null, never NaN


# -- subcommands ------------------------------------------------------------------------
def cmd_compile(a: argparse.Namespace) -> int:
    from bebert.target import GemmTarget, parse_target

    from bebert.api import check_seed

    check_seed(a.seed)
    config = _config(a.config)
    target = parse_target(a.model)
    if a.dump_ir:
        if isinstance(target, GemmTarget):
            raise UserError("--dump-ir applies to whole models (synthetic:... or a package), not gemm: specs")
        from bebert.compiler.pipeline import load_target, run_passes

        model, seq, name, meta = load_target(target, a.seed)
        g = run_passes(model, seq, config, name=name, stop=a.dump_ir, meta=meta)
        sys.stdout.write(g.dump() if hasattr(g, "dump") else
                         f"# program: {len(g.instrs)} instructions, {g.dram.size} DRAM bytes\n")
        return 0
    if not a.out:
        raise UserError("--out is required (the program directory to write)")
    from bebert import api
    from bebert.files import check_output_dir
    from bebert.program import is_program_dir

    check_output_dir(a.out, "program", is_program_dir)  # before the work: a package there is never touched
    program = api.compile(target, config, seed=a.seed)
    program.write(a.out)
    _print_json({"out": str(a.out), "instructions": len(program.instrs),
                 "dram_bytes": int(program.dram.size), "config": config.name, "model": a.model})
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    import numpy as np

    from bebert.files import atomic_write
    from bebert.program import Program

    if a.out is not None and not str(a.out).endswith(".npz"):
        raise UserError(f"--out {a.out}: the outputs file must be a .npz file")
    if a.examples is not None and a.examples < 1:
        raise UserError(f"--examples must be at least 1, got {a.examples}")
    program = Program.read(a.program)
    from bebert.compiler import golden

    if program.meta.get("kind") == "model":
        return _run_model(a, program)
    if a.task or a.data_dir or a.examples:
        raise UserError("--task / --data-dir / --examples apply to whole-model programs only")
    dram = golden.execute(program)
    outs = golden.outputs(program, dram)
    dest = Path(a.out) if a.out else Path(a.program) / "outputs.npz"
    buf = io.BytesIO()
    np.savez(buf, **outs)
    atomic_write(dest, buf.getvalue())
    _print_json({"outputs": str(dest),
                 "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in outs.items()}})
    return 0


def _run_model(a: argparse.Namespace, program) -> int:
    """Golden runs of a whole-ensemble program: its compiled-in example, or GLUE examples."""
    import numpy as np

    from bebert.compiler import host

    res: dict = {"program": str(a.program), "members": program.meta["members"]}
    if a.task or a.data_dir or a.examples:
        pkg_dir = program.meta.get("package")
        if not pkg_dir:
            raise UserError("this program was compiled from a synthetic model: it has no tokenizer or task; "
                            "run it without --task / --data-dir / --examples")
        from bebert.model import glue
        from bebert.model.package import load_package

        pkg = load_package(pkg_dir)
        task = glue.get_task(a.task or pkg.task)
        examples = glue.load_split(task, a.split, a.data_dir, a.examples)
        batch = glue.encode(examples, pkg.tokenizer(), program.meta["seq"], task.is_regression)
        outs = host.run_batch_outputs(program, batch)
        res.update(task=task.name, split=a.split, examples=len(examples),
                   labels=batch["labels"].numpy().tolist())
    else:
        outs = [host.run_outputs(program)]
        res.update(examples=1, input="compiled-in")
    member_preds, preds = host.predict(outs, program)      # the device's votes (or apply_vote): integers
    acc = np.stack([host.accumulators(o, program) for o in outs])
    vote = program.meta.get("vote") or {}
    res["vote"] = {"method": vote.get("method"), "on": vote.get("on")}
    if program.meta.get("regression"):
        from bebert.model.vote import score_value

        res["prediction_codes"] = preds.tolist()
        preds, member_preds = score_value(preds), score_value(member_preds)
    res["predictions"] = np.asarray(preds).tolist()
    res["member_predictions"] = np.asarray(member_preds).T.tolist()
    res["member_logits"] = [m.tolist() for m in np.moveaxis(host.logit_values(acc, program), 1, 0)]
    res["accumulators"] = acc.tolist()
    if "labels" in res and not program.meta.get("regression"):
        res["accuracy"] = float(np.mean(np.asarray(preds) == np.asarray(res["labels"])))
    if a.json:
        _print_json(res)
    else:
        print(f"{res['examples']} example(s): predictions {res['predictions'][:20]}"
              + (f"; accuracy {res['accuracy']:.4f}" if "accuracy" in res else ""))
    return 0


def cmd_sim(a: argparse.Namespace) -> int:
    from bebert.program import Program

    program = Program.read(a.program)
    from bebert.sim import SimError, simulate
    from bebert.sim.energy import load_table
    from bebert.sim.report import plot, sim_report

    table = load_table(a.energy)
    try:
        result = simulate(program, trace=True)
    except SimError as e:  # a program that deadlocks on its tokens: one line, not a traceback
        print(f"bebert: {a.program}: {e}", file=sys.stderr)
        return EXIT_FAILED
    d = sim_report(program, result, table)
    from bebert.hw.pnr import clock_status

    d["clock"] = clock_status(program.config)  # the configured clock against its measured Fmax
    if d["clock"]["warning"]:
        print(f"bebert: warning: {d['clock']['warning']}", file=sys.stderr)
    if a.plot:
        d["plots"] = [str(p) for p in plot(program, result, table, Path(a.plot))]
    if a.json:
        _print_json(d)
    else:
        roof = d["roofline"]
        print(f"{d['cycles']:,} cycles = {d['latency_s'] * 1e6:.2f} us at {program.config.clock_mhz} MHz "
              f"({d['inferences_per_s']:,.1f} inferences/s); {d['energy_j'] * 1e6:.2f} uJ ({table.name}); "
              f"DRAM {d['dram_bytes']:,} bytes")
        print(f"roofline: peak {roof['peak_binary_ops_per_s']:.3g} binary ops/s, DRAM {roof['dram_bytes_per_s']:.3g} "
              f"B/s; achieved {roof['achieved_fraction']:.1%} of the {roof['bound_by']} bound")
        print("utilization: " + ", ".join(f"{k} {v:.1%}" for k, v in d["utilization"].items()))
        for n, m in enumerate(d["members"], 1):
            print(f"member {m['member']}: latency {m['latency_s'] * 1e6:.2f} us, energy {m['energy_j'] * 1e6:.2f} uJ; "
                  f"adds {m['marginal_latency_s'] * 1e6:.2f} us -> ensemble of {n}: "
                  f"{m['cumulative_latency_s'] * 1e6:.2f} us, {m['cumulative_energy_j'] * 1e6:.2f} uJ")
        for p in d.get("plots", []):
            print(f"wrote {p}")
    return 1 if result.error else 0


def cmd_rtl(a: argparse.Namespace) -> int:
    """The Verilog, its wrapper and constraints (bebert.hw.deliver), and with --report /
    --pnr the resource figures; everything is made in a staging folder and moved into --out
    only once all of it succeeded, so a failure leaves --out as it was."""
    config = _config(a.config)
    from bebert.files import check_output_dir
    from bebert.hw.verilog import TOP_NAME

    rtl_suffixes = (".v", ".il", ".sdc", ".lpf", ".json")
    check_output_dir(a.out, "Verilog build", lambda d: all(p.suffix in rtl_suffixes for p in d.iterdir()))
    stale = Path(a.out) / "resources.json"
    if stale.is_file():  # the report of an earlier, maybe other, config
        stale.unlink()
    from bebert.hw.deliver import staged_outputs, write_deliverables
    from bebert.files import write_json

    with staged_outputs(Path(a.out)) as stage:
        paths = write_deliverables(config, stage)
        result: dict = {name: str(Path(a.out) / p.name) for name, p in paths.items()}
        report: dict = {}
        if a.report:
            from bebert.hw.resources import resource_report

            print(f"synthesising {paths['verilog'].name} with yosys (synth_xilinx) ...", file=sys.stderr, flush=True)
            report = resource_report(config, paths["verilog"], yosys=a.yosys)
            report["verilog"] = result["verilog"]
            result.update(total=report["total"], peak_binary_ops_per_s_per_lut=report["peak_binary_ops_per_s_per_lut"])
        if a.pnr:
            from bebert.hw.pnr import place_and_route

            print(f"synthesising {paths['verilog'].name} with yosys (synth_ecp5) and placing it on the {a.part} "
                  "with nextpnr-ecp5 ...", file=sys.stderr, flush=True)
            pnr = place_and_route(config, paths["verilog"], part_name=a.part, yosys=a.yosys)
            report = (report or {"config": config.name, "clock_mhz": config.clock_mhz}) | {"ecp5": pnr}
            result.update(ecp5={k: pnr[k] for k in ("part", "fmax_mhz", "clock_mhz", "meets_clock", "utilization")})
        if report:
            write_json(stage / "resources.json", report)
            result["report"] = str(Path(a.out) / "resources.json")
    _print_json(result)
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    from bebert.hw.verify import verify

    # Reads the program itself (its directory name names the waveform file); a program with
    # VEC (RtlUnsupported), a bad waves directory (WavesError) or a simulator that is not
    # installed (SimulatorMissing) is one line via main().
    result = verify(a.program, waves=a.waves, simulator=a.simulator)
    _print_json(result)
    if not result.get("passed"):
        print(f"bebert: verify failed: {result.get('reason')}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_disasm(a: argparse.Namespace) -> int:
    from bebert.isa import disassemble_program
    from bebert.program import Program

    program = Program.read(a.program, check=False)  # shows a program as it is, even one `run` refuses
    sys.stdout.write(disassemble_program(list(program.instrs)))
    return 0


def cmd_stats(a: argparse.Namespace) -> int:
    from bebert.compiler.stats import stats_for

    d = stats_for(a.target)
    if a.json:
        _print_json(d)
    else:
        for k, v in d.get("reduction", {}).items():
            if isinstance(v, list):  # a mixed ensemble: one figure per member
                v = "  ".join(f"{x:.2f}x" for x in v)
                print(f"{k:32s} {v}")
            else:
                print(f"{k:32s} {v:8.2f}x" if isinstance(v, (int, float)) else f"{k:32s} {v}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from bebert.demo import run_demo

    return run_demo(Path(a.out), quick=a.quick)


# -- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bebert", description="Binary BERT ensembles from PyTorch to verified RTL.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="compile a model to a Program directory")
    c.add_argument("--model", required=True,
                   help="gemm:M,K,N,ABITS[,OBITS] (one layer), synthetic:PRESET[,members=,abits=,seq=] or a "
                        "trained package / run directory (the whole ensemble)")
    c.add_argument("--config", help="accelerator TOML, or a shipped one by name: default, small, wide "
                                    "(default: default)")
    c.add_argument("--out", help="program directory to write")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--dump-ir", metavar="PASS", help="print the IR after PASS (import, shape, tile, bitplane, "
                                                     "alloc, schedule, emit) and exit")
    c.set_defaults(func=cmd_compile)

    r = sub.add_parser("run", help="run a Program on the golden executor")
    r.add_argument("program")
    r.add_argument("--out", help="outputs file (default: PROGRAM/outputs.npz)")
    r.add_argument("--task", help="whole-model programs: GLUE task (default: the package's)")
    r.add_argument("--data-dir", help="whole-model programs: GLUE TSV folder")
    r.add_argument("--split", default="dev", help="split to run (default dev)")
    r.add_argument("--examples", type=int, help="first N examples (seeded subset, as eval's --max-eval-examples)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sim", help="cycle-accurate simulation of a Program")
    s.add_argument("program")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--energy", help="energy table: asic45 (default), fpga, or a TOML file")
    s.add_argument("--plot", metavar="DIR", help="write breakdown.png and timeline.png to DIR")
    s.set_defaults(func=cmd_sim)

    h = sub.add_parser("rtl", help="generate the accelerator's Verilog")
    h.add_argument("--config", help="accelerator TOML, or a shipped one by name: default, small, wide "
                                    "(default: default)")
    h.add_argument("--out", required=True)
    h.add_argument("--report", action="store_true",
                   help="also synthesise with yosys synth_xilinx and write resources.json (7-series LUTs, FFs, BRAM, "
                        "DSP per block; pre-placement cell counts)")
    h.add_argument("--pnr", choices=("ecp5",),
                   help="also synthesise with synth_ecp5 and place and route with nextpnr-ecp5 on --part: placed "
                        "LUT4 / FF / DP16KD / MULT18 and the achieved Fmax into resources.json (minutes)")
    h.add_argument("--part", default="LFE5U-85F", help="ECP5 part for --pnr (default LFE5U-85F, the largest)")
    h.add_argument("--yosys", help="Yosys build: system (the yosys on PATH, default where installed), yowasp (PyPI), or a path")
    h.set_defaults(func=cmd_rtl)

    v = sub.add_parser("verify", help="run a Program on the RTL (cocotb + Verilator or Icarus) against golden and simulator")
    v.add_argument("program")
    v.add_argument("--simulator", choices=("verilator", "icarus"),
                   help="RTL simulator (default: $BEBERT_SIMULATOR, else the fastest installed: verilator, icarus)")
    v.add_argument("--waves", metavar="DIR",
                   help="dump every signal to DIR/<program>.fst (default: $BEBERT_WAVES, else none)")
    v.set_defaults(func=cmd_verify)

    d = sub.add_parser("disasm", help="print a Program's instruction stream as text")
    d.add_argument("program")
    d.set_defaults(func=cmd_disasm)

    t = sub.add_parser("stats", help="parameters, bytes, binary and FP operations, reductions vs FP BERT")
    t.add_argument("target", help="synthetic:PRESET[,members=,abits=,seq=], a trained run/package, or a Program")
    t.add_argument("--json", action="store_true", help="print one JSON object (default: the reductions)")
    t.set_defaults(func=cmd_stats)

    m = sub.add_parser("demo", help="the embedded default job: compile, run, simulate, verify")
    m.add_argument("--out", default="out/demo")
    m.add_argument("--quick", action="store_true", help="smaller workloads")
    m.set_defaults(func=cmd_demo)

    try:
        from bebert.model import cli as model_cli
    except ImportError:
        model_cli = None
    if model_cli is not None and hasattr(model_cli, "register"):
        model_cli.register(sub)
    from bebert import dse

    dse.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except KeyboardInterrupt:
        print("bebert: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, NotImplementedError) as e:
        if os.environ.get("BEBERT_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"bebert: error: {msg}", file=sys.stderr)
        return EXIT_FAILED if _rejected_program(e) else EXIT_USAGE


def _rejected_program(e: Exception) -> bool:
    from bebert.program import ProgramRejected

    return isinstance(e, ProgramRejected)


if __name__ == "__main__":
    sys.exit(main())
