"""``ostnet train --init CKPT [--freeze PREFIXES]``: start a new run from another checkpoint's weights.

This is the paper's plug-and-play experiment (Table 5): a FOMM checkpoint, converted by ``ostnet convert-fomm``
(or given as FOMM's ``.pth.tar``, converted on the fly), initialises ``fomm-st-se``; its keypoint detector and
generator load, the scale transformation (ST) and scale embedding (SE) start fresh and are the only parts
trained.

* Every tensor whose name and shape match is loaded; the others of the model stay as initialised ("fresh");
  tensors of the checkpoint that fit nowhere are "ignored". ``InitReport`` lists the three.
* ``--freeze kp_detector,generator`` fixes the **loaded** tensors under those module prefixes: their
  parameters get no gradient and their BatchNorm layers always normalise with the loaded running statistics,
  which they never update (torchvision's "frozen BatchNorm" practice). Fresh tensors under a frozen prefix
  (SE's layers inside the generator) still train.
* The report is written to the run folder as ``init.json``; ``--resume`` of such a run reads the frozen names
  from it, so a resumed run stays frozen the same way. ``--init`` never combines with ``--resume``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ostnet.convert_fomm import convert_fomm_checkpoint
from ostnet.errors import OstnetError

INIT_FILENAME = "init.json"


@dataclass
class InitReport:
    """What ``--init`` did: tensor names loaded, left fresh, ignored (with the reason), and frozen."""

    checkpoint: str
    loaded: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the terminal: counts, and the module groups of each list."""
        lines = [
            f"--init {self.checkpoint}: loaded {len(self.loaded)} tensors ({_groups(self.loaded)}), "
            f"fresh {len(self.fresh)} ({_groups(self.fresh)}), ignored {len(self.ignored)} ({_groups(self.ignored)})"
        ]
        if self.frozen:
            lines.append(f"--freeze: {len(self.frozen)} loaded tensors stay fixed ({_groups(self.frozen)})")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def _groups(names: Sequence[str] | dict) -> str:
    """ "kp_detector 40, generator 120" from tensor names (first two name parts for the generator's insides)."""
    counts: dict[str, int] = {}
    for name in names:
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "generator" and len(parts) > 2 else parts[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def read_init_state(path: str | Path) -> dict[str, Tensor]:
    """Tensors of an ostnet checkpoint (``.safetensors``) or of FOMM's ``.pth.tar`` (converted on the fly)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise OstnetError(f"--init {path}: file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - a corrupt file raises several kinds
            raise OstnetError(f"--init {path}: not a readable safetensors file ({exc})") from None

    return convert_fomm_checkpoint(path)[1]


def init_from_checkpoint(model: nn.Module, path: str | Path, freeze: Sequence[str] = ()) -> InitReport:
    """Load every tensor of ``path`` that matches ``model`` in name and shape; ``report.frozen`` lists the loaded
    ones under ``freeze`` (module-name prefixes), for ``apply_freeze`` (after any module conversion such as
    SyncBatchNorm). OstnetError when nothing matches or a prefix names no module."""
    state = read_init_state(path)
    own = model.state_dict()
    report = InitReport(str(path))
    for name, value in state.items():
        if name not in own:
            report.ignored[name] = "not in this model"
        elif tuple(value.shape) != tuple(own[name].shape):
            report.ignored[name] = f"shape {tuple(value.shape)} here {tuple(own[name].shape)}"
        else:
            report.loaded.append(name)
    if not report.loaded:
        example = next(iter(state), "none")
        raise OstnetError(
            f"--init {path}: no tensor matches this model in name and shape ({len(state)} tensors, e.g. {example}); "
            "is it a checkpoint of the same model family?"
        )
    with torch.no_grad():
        for name in report.loaded:
            own[name].copy_(state[name])
    report.fresh = [n for n in own if n not in set(report.loaded)]
    report.frozen = frozen_names(model, report.loaded, freeze)
    return report


def frozen_names(model: nn.Module, loaded: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    modules = {name for name, _ in model.named_modules() if name}
    for prefix in prefixes:
        if prefix not in modules:
            top = sorted({m.split(".")[0] for m in modules})
            raise OstnetError(f"--freeze: {prefix!r} is not a module of this model (e.g. {', '.join(top)})")
    return [n for n in loaded if any(n.startswith(p + ".") for p in prefixes)]


def apply_freeze(model: nn.Module, names: Sequence[str]) -> None:
    """No gradient for the named parameters; BatchNorm layers holding frozen statistics stay in eval mode."""
    names = set(names)
    for name, param in model.named_parameters():
        if name in names:
            param.requires_grad_(False)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and f"{name}.running_mean" in names:
            module.register_forward_pre_hook(_eval_mode)


def _eval_mode(module: nn.Module, _inputs) -> None:
    module.training = False  # use and keep the loaded running statistics, whatever train() set


def read_frozen(run_dir: Path) -> list[str]:
    """The frozen tensor names recorded by ``--init`` in a run folder (empty when the run had none)."""
    path = Path(run_dir) / INIT_FILENAME
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("frozen", []))
