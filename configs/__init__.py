"""The shipped accelerator configurations (`*.toml`) and energy tables (`energy/*.toml`).

Data, not code: read them with `bebert.shipped` (importlib.resources), which works the same in
a checkout, an editable install and a wheel.
"""
