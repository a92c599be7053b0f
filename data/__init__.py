"""Package data shipped with tdglnre (installed as ``tdglnre.data``).

Presets live in ``presets/*.toml``; read them with
``importlib.resources.files("tdglnre.data") / "presets"``.
"""
