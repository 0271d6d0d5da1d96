"""The whole-ensemble compiler: `compile_model(target, config) -> Program`, as a list of passes.

    import -> shape -> tile -> bitplane -> alloc -> schedule -> emit

Each pass is a plain function over the graph IR (compiler/ir.py) that checks which pass ran
before it; `run_passes(..., stop=NAME)` returns the graph after pass NAME (what `bebert compile
--dump-ir NAME` prints). `target` is a "synthetic:..." spec, a package or training-run directory
(both parsed by `bebert.target.parse_target`), or an integer model object (`model/package.py
IntegerModel`).
"""

from __future__ import annotations

import time
from pathlib import Path

from bebert.config import AccelConfig
from bebert.program import Program
from bebert.target import TARGET_TYPES, PackageTarget, SyntheticTarget, parse_target

from .alloc import alloc
from .bitplane import bitplane
from .emit import emit_program
from .errors import CompileError
from .host import default_input, with_inputs
from .import_model import import_model
from .ir import STAGES, Graph
from .schedule import schedule_graph
from .shape import infer_shapes
from .tile import tile

PASSES = STAGES  # import, shape, tile, bitplane, alloc, schedule, emit


def load_target(target, seed: int = 0):
    """(integer model, seq, name, extra meta) of a target (`bebert.target.parse_target`: a spec,
    a package or run directory) or of an integer model object."""
    if not isinstance(target, (str, Path, *TARGET_TYPES)):  # an integer model object
        return target, int(target.max_seq_len), "integer-model", {}
    t = parse_target(target)
    if isinstance(t, SyntheticTarget):
        from .synthetic import synthetic_model

        return synthetic_model(t.shape, seed), t.shape.seq, t.text, {
            "labels": None, "task": "synthetic", "regression": t.shape.vote in ("mean", "median")}  # a score vote
    if isinstance(t, PackageTarget):
        from bebert.model.package import integer_model, load_package  # imports torch

        pkg = load_package(t.path)
        im = integer_model(pkg)
        return im, im.max_seq_len, str(t.path), {"task": pkg.task, "labels": pkg.labels,
                                                  "regression": pkg.regression, "package": str(t.path)}
    raise CompileError(f"model {t.text!r}: a {t.kind} target is not a whole model; expected a 'synthetic:' spec "
                       "or a package / run directory")


def run_passes(model, seq: int, config: AccelConfig, *, name: str = "model", stop: str = "emit",
               meta: dict | None = None, timings: dict | None = None):
    """Run the passes up to and including `stop`; the Graph after it (the Program after emit)."""
    if stop not in PASSES:
        raise CompileError(f"unknown pass '{stop}' (passes: {', '.join(PASSES)})")
    steps = [("import", lambda _: import_model(model, seq, name)), ("shape", infer_shapes),
             ("tile", lambda g: tile(g, config)), ("bitplane", lambda g: bitplane(g, config)),
             ("alloc", alloc), ("schedule", lambda g: schedule_graph(g, config)),
             ("emit", lambda g: emit_program(g, config))]
    g: Graph | Program | None = None
    for pname, fn in steps:
        t0 = time.perf_counter()
        g = fn(g)
        if pname == "import" and meta:
            g.meta.update(meta)
        if timings is not None:
            timings[pname] = time.perf_counter() - t0
        if pname == stop:
            break
    return g


def compile_model(target, config: AccelConfig, *, seed: int = 0) -> Program:
    """The Program of a whole ensemble (see the module doc); CompileError (one line) if it cannot be."""
    timings: dict = {}
    t0 = time.perf_counter()
    model, seq, name, meta = load_target(target, seed)
    timings["load"] = time.perf_counter() - t0
    m0 = model.members[0]
    vocab = int(m0.word_binary[0].shape[0] if getattr(m0, "word_binary", None) else m0.word.shape[0])
    prog = run_passes(model, seq, config, name=name, meta={**meta, "seed": seed, "vocab": vocab}, timings=timings)
    prog = with_inputs(prog, *default_input(seq, vocab, seed))  # the example `bebert run` uses by default
    prog.meta["compile_s"] = {k: round(v, 4) for k, v in timings.items()}
    return prog
