"""Example design spaces (`space_*.toml`, for `bebert dse --space NAME`) and example scripts.

The spaces ship with the package and are found by name through `bebert.shipped`; the scripts
are meant to be run from a checkout (`python examples/sweep_array.py`).
"""
