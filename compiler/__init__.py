"""The bebert compiler: binary BERT ensembles and single layers -> programs, and the golden executor.

    compile_linear(layer, x_int, config, name="y") -> Program
    compile_spec("gemm:M,K,N,ABITS[,OBITS]", config, seed=0) -> Program
    compile_model("synthetic:..." | package dir | IntegerModel, config, seed=0) -> Program (whole ensemble)
    golden.execute(program) -> final DRAM image;  golden.outputs(program, dram) -> {name: array}
    check_tokens(instrs, queue_depth) -> TokenReport (raises TokenError on deadlock / imbalance)

Submodules are imported on first use, so `from bebert.compiler import golden` does not pull in
the whole compiler.
"""

import importlib

_LAZY = {
    "CompileError": ".errors", "compile_linear": ".lower", "compile_model": ".pipeline", "run_passes": ".pipeline",
    "compile_spec": ".spec", "parse_spec": ".spec", "TokenError": "bebert.tokens", "TokenReport": "bebert.tokens",
    "check_tokens": "bebert.tokens",
}

__all__ = ["CompileError", "TokenError", "TokenReport", "check_tokens", "compile_linear", "compile_model",
           "run_passes", "compile_spec", "golden", "parse_spec"]


def __getattr__(name):
    if name == "golden":
        return importlib.import_module(".golden", __name__)
    if name in _LAZY:
        mod = _LAZY[name]
        return getattr(importlib.import_module(mod, __name__ if mod.startswith(".") else None), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
