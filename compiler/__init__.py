"""The bebert compiler: binary linear layers -> programs, and the golden executor.

    compile_linear(layer, x_int, config, name="y") -> Program
    compile_spec("gemm:M,K,N,ABITS[,OBITS]", config, seed=0) -> Program
    compile_model("synthetic:..." | package dir | IntegerModel, config, seed=0) -> Program (whole ensemble)
    golden.execute(program) -> final DRAM image;  golden.outputs(program, dram) -> {name: array}
                                (`from bebert.compiler import golden`: imported on use)
    check_tokens(instrs, queue_depth) -> TokenReport (raises TokenError on deadlock / imbalance)
"""

from .errors import CompileError
from .lower import compile_linear
from .pipeline import compile_model, run_passes
from .spec import compile_spec, parse_spec
from .tokens import TokenError, TokenReport, check_tokens

__all__ = ["CompileError", "TokenError", "TokenReport", "check_tokens", "compile_linear", "compile_model",
           "run_passes",
           "compile_spec", "golden", "parse_spec"]
