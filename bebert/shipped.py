"""Files that ship with the package: accelerator configurations and example design spaces.

    config_file("small")      configs/small.toml             (`--config small`)
    default_config()          configs/default.toml as an AccelConfig (no --config given)
    space_file("space_small") examples/space_small.toml      (`bebert dse --space space_small`)

They are package data of `bebert.configs` and `bebert.examples` (the repository's `configs/` and
`examples/` folders), read through `importlib.resources`, so a regular `pip install` finds them
as a checkout does: no path is computed from this file's location. A leaf.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bebert.config import AccelConfig, ConfigError

CONFIGS = "bebert.configs"
EXAMPLES = "bebert.examples"


def _folder(package: str) -> Path:
    root = resources.files(package)
    if not isinstance(root, Path):  # a zipped install: the spaces' relative paths need real files
        raise RuntimeError(f"{package} is not installed as files on disk ({root!r}); install bebert unzipped")
    return root


def config_names() -> list[str]:
    return sorted(p.stem for p in _folder(CONFIGS).glob("*.toml"))


def space_names() -> list[str]:
    return sorted(p.stem for p in _folder(EXAMPLES).glob("*.toml"))


def config_file(name: str) -> Path:
    """The shipped configuration `name` (ConfigError naming the shipped ones if there is none)."""
    p = _folder(CONFIGS) / f"{name}.toml"
    if not p.is_file():
        raise ConfigError(f"no shipped config '{name}' (shipped: {', '.join(config_names())}; or give a TOML file)")
    return p


def default_config() -> AccelConfig:
    """The default accelerator, read from the shipped configs/default.toml."""
    return AccelConfig.from_toml(config_file("default"))


def space_file(name: str) -> Path | None:
    """The shipped example space `name` (with or without .toml), or None."""
    p = _folder(EXAMPLES) / (name if name.endswith(".toml") else f"{name}.toml")
    return p if p.is_file() else None


def energy_file(name: str) -> Path | None:
    """The shipped energy table TOML `name` (configs/energy/NAME.toml), or None."""
    p = _folder(CONFIGS) / "energy" / f"{name}.toml"
    return p if p.is_file() else None
