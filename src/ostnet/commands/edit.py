"""``ostnet edit``: change the head pose and expression of a still portrait (PECHead checkpoints).

Example::

    ostnet edit --source portrait.jpg --checkpoint pechead.safetensors --yaw 15 --smile 0.5 --output out.png

The options are ``ostnet.inference.options.EditOptions`` (declared once; docs/cli.md).
"""

from __future__ import annotations

import argparse

from ostnet.commands.control_options import save_recipe
from ostnet.inference.options import EditOptions
from ostnet.options import add_command

OPTIONS = EditOptions


def register(sub: argparse._SubParsersAction) -> None:
    add_command(
        sub,
        OPTIONS,
        run,
        "edit",
        help="turn the head or change the expression of a portrait",
        description="Edit a still portrait with the pose and expression controls of a PECHead checkpoint: "
        "the face is found and cropped, edited, and written as the crop or pasted back into the portrait.",
    )


def run(options: EditOptions) -> int:
    print(edit(options))
    return 0


def edit(options: EditOptions, model=None) -> str:
    """Edit ``options.source`` into ``options.output`` (with ``model``, else the checkpoint's); the summary
    line. The web app's Edit tab calls it with its loaded model."""
    from ostnet.checkpoint import load_checkpoint
    from ostnet.errors import OstnetError
    from ostnet.inference.animator import Animator
    from ostnet.inference.faces import CropOptions, prepare_source
    from ostnet.inference.paste import PasteBack
    from ostnet.io.image import save_image, to_tensor, to_uint8
    from ostnet.io.paths import check_outputs

    check_outputs({"--source": options.source, "--checkpoint": options.checkpoint}, {"--output": options.output})
    controls = options.controls.resolve()
    if options.output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise OstnetError(f"{options.output}: unknown image format {options.output.suffix!r} (use .png, .jpg or .webp)")
    model = load_checkpoint(options.checkpoint) if model is None else model
    animator = Animator(model, device=options.device, controls=controls)  # refuses controls the model cannot honour
    crop = CropOptions(enabled=options.crop, face_index=options.face_index)
    source = prepare_source(options.source, crop, animator.image_size)
    animator.set_source(to_tensor(source.crop)[None])
    face = animator.edit().cpu()
    paste = PasteBack(source.image, source.box, animator.image_size) if options.paste_back else None
    image = paste(face)[0] if paste is not None else to_uint8(face)[0]
    save_image(options.output, image)
    save_recipe(options.controls.save_recipe, controls)
    return f"edited {options.source} ({', '.join(controls.changed()) or 'no change'}) -> {options.output}"
