"""Package discovery for the wheel (the metadata is in pyproject.toml).

The import package `bebert` is assembled from folders of the repository: `bebert/` itself and
`model/`, `compiler/`, `hw/`, `sim/` as its subpackages, plus the shipped data folders
`configs/` (accelerator and energy TOML) and `examples/` (design spaces). Every package below
each of those roots is found here, so a new subpackage (like `hw/vec`) ships without anyone
listing it; tests/test_packaging.py builds the wheel and checks it from a fresh environment.
"""

from setuptools import find_packages, setup

ROOTS = {"bebert": "bebert", "bebert.model": "model", "bebert.compiler": "compiler", "bebert.hw": "hw",
         "bebert.sim": "sim", "bebert.configs": "configs", "bebert.examples": "examples"}
DATA = {"bebert.configs": ["*.toml", "energy/*.toml"], "bebert.examples": ["*.toml"]}


def packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


setup(package_dir=ROOTS, packages=packages(), package_data=DATA)
