"""What ``ostnet animate`` and ``ostnet edit`` share beyond their declarations
(``ostnet.inference.options.ControlOptions`` / ``EditControls``): writing ``--save-recipe``."""

from __future__ import annotations

from pathlib import Path


def save_recipe(path: Path | None, controls) -> None:
    """Write the controls used to ``path`` (``--save-recipe``) atomically; nothing when it is None."""
    if path is None:
        return
    from ostnet.io.atomic import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(controls.to_json() + "\n", encoding="utf-8"))
