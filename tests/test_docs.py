"""The docs stay true: ISA.md's tables are generated from bebert.isa, README and TUTORIAL only
name commands, options and files that exist, and ADDING_AN_INSTRUCTION names real code."""

import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_isa_doc_tables_are_current():
    gen = runpy.run_path(str(DOCS / "gen_isa_tables.py"))
    text = (DOCS / "ISA.md").read_text()
    assert gen["updated"](text) == text, "docs/ISA.md is stale: run python docs/gen_isa_tables.py"


def test_isa_doc_lists_every_opcode_field_and_kernel():
    from bebert import isa, vector

    text = (DOCS / "ISA.md").read_text()
    for op in isa.Op:
        assert f"### `{op.name}` (0x{int(op):02X}) operands" in text
        for name, (lsb, width) in isa.FIELDS[op].items():
            assert f"| `{name}` | [" in text
    for fn in vector.VecFn:
        assert f"| {int(fn)} | `{fn.name}` |" in text


def shell_commands(md: Path) -> list[list[str]]:
    """Every command line of the ```sh blocks (comments and continuation joined)."""
    cmds, block = [], None
    for line in md.read_text().splitlines():
        if line.startswith("```"):
            block = [] if line.strip() in ("```sh", "```bash") and block is None else None
            continue
        if block is not None:
            code = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if code:
                cmds.append(shlex.split(code))
    return cmds


@pytest.mark.parametrize("doc", ["README.md", "docs/TUTORIAL.md"])
def test_every_bebert_command_in_the_docs_parses(doc):
    from bebert.cli import build_parser

    parser = build_parser()
    cmds = [c for c in shell_commands(ROOT / doc) if c and c[0] == "bebert"]
    assert cmds, f"{doc} shows no bebert command"
    for argv in cmds:
        for sep in ("|", ">"):  # `bebert disasm DIR | head`, `bebert eval RUN --json > FILE`
            argv = argv[:argv.index(sep)] if sep in argv else argv
        parser.parse_args(argv[1:])  # SystemExit (a failure) on an unknown subcommand or option


@pytest.mark.parametrize("doc", ["README.md", "docs/TUTORIAL.md", "docs/ADDING_AN_INSTRUCTION.md"])
def test_files_named_in_the_docs_exist(doc):
    text = (ROOT / doc).read_text()
    names = set(re.findall(r"`((?:bebert|compiler|sim|hw|model|tests|docs|examples|configs|bench)/[\w./-]+\.(?:py|md|toml))",
                           text))
    assert names
    missing = [n for n in sorted(names) if not (ROOT / n).exists()]
    assert not missing, f"{doc} names files that do not exist: {missing}"


def test_adding_an_instruction_names_real_functions():
    text = (DOCS / "ADDING_AN_INSTRUCTION.md").read_text()
    import importlib

    refs = re.findall(r"`(bebert(?:\.\w+)*):(\w+)`", text)
    assert len(refs) > 30
    for mod, name in refs:
        m = importlib.import_module(mod)
        assert hasattr(m, name), f"{mod} has no {name}"


@pytest.mark.slow
@pytest.mark.rtl
def test_the_readme_tour_runs(tmp_path):
    """Every command of the README's tour, in order, as a user would type them (minutes: RTL)."""
    env_bin = Path(sys.executable).parent
    tour = [c for c in shell_commands(ROOT / "README.md") if c and c[0] == "bebert"]
    for argv in tour:
        line = " ".join(shlex.quote(a) if a != "|" else a for a in argv)
        r = subprocess.run(f"{env_bin}/{line}", shell=True, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"{line}: {r.stderr[-2000:]}"


def test_the_readme_python_example_runs(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the README's commands run from the repository root
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.split()
    assert int(out[0]) > 0 and float(out[2]) > 0  # cycles, latency, energy
