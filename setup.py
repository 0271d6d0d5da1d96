"""Package discovery for the wheel (the metadata is in pyproject.toml).

The import package `bebert` is assembled from folders of the repository: `bebert/` itself and
`model/`, `compiler/`, `hw/`, `sim/` as its subpackages, plus the shipped data folders
`configs/` (accelerator and energy TOML) and `examples/` (design spaces). Every package below
each of those roots is found here, so a new subpackage (like `hw/vec`) ships without anyone
listing it; tests/test_packaging.py builds the wheel and checks it from a fresh environment.
"""

from setuptools import find_namespace_packages, find_packages, setup

ROOTS = {"bebert": "bebert", "bebert.model": "model", "bebert.compiler": "compiler", "bebert.hw": "hw",
         "bebert.sim": "sim", "bebert.configs": "configs", "bebert.examples": "examples"}
DATA_ROOTS = ("bebert.configs", "bebert.examples")  # every folder below them is data (energy/)
DATA = {"bebert.configs": ["*.toml"], "bebert.configs.energy": ["*.toml"], "bebert.examples": ["*.toml"]}


def packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        subs = (find_namespace_packages(folder, exclude=["*__pycache__*"]) if name in DATA_ROOTS
                else find_packages(folder))
        found += [name] + [f"{name}.{sub}" for sub in subs]
    return found


setup(package_dir=ROOTS, packages=packages(), package_data=DATA)
