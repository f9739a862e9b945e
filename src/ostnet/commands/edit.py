"""``ostnet edit``: change the head pose and expression of a still portrait (PECHead checkpoints).

Example::

    ostnet edit --source portrait.jpg --checkpoint pechead.safetensors --yaw 15 --smile 0.5 --output out.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ostnet.commands.control_options import add_control_arguments, controls_from_args, save_recipe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edit",
        help="turn the head or change the expression of a portrait",
        description="Edit a still portrait with the pose and expression controls of a PECHead checkpoint: "
        "the face is found and cropped, edited, and written as the crop or pasted back into the portrait.",
    )
    p.add_argument("--source", metavar="IMAGE", type=Path, required=True, help="portrait image")
    p.add_argument("--checkpoint", metavar="CKPT", type=Path, required=True, help="a PECHead .safetensors checkpoint")
    p.add_argument("--output", metavar="OUT", type=Path, required=True, help="output image (.png, .jpg, .webp)")
    p.add_argument("--no-crop", action="store_true", help="the source is already a face crop")
    p.add_argument("--face-index", metavar="K", type=int, default=0, help="face to edit, 0 = largest")
    p.add_argument("--paste-back", action="store_true", help="write the whole portrait with the edited face")
    p.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None, help="default: best available")
    add_control_arguments(p, video=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ostnet.checkpoint import load_checkpoint
    from ostnet.errors import OstnetError
    from ostnet.inference.animator import Animator
    from ostnet.inference.faces import CropOptions, prepare_source
    from ostnet.inference.paste import PasteBack
    from ostnet.io.image import save_image, to_tensor, to_uint8
    from ostnet.io.paths import check_outputs

    check_outputs({"--source": args.source, "--checkpoint": args.checkpoint}, {"--output": args.output})

    controls = controls_from_args(args)
    if args.output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise OstnetError(f"{args.output}: unknown image format {args.output.suffix!r} (use .png, .jpg or .webp)")
    model = load_checkpoint(args.checkpoint)
    animator = Animator(model, device=args.device, controls=controls)  # refuses controls the model cannot honour
    source = prepare_source(args.source, CropOptions(enabled=not args.no_crop, face_index=args.face_index),
                            animator.image_size)  # fmt: skip
    animator.set_source(to_tensor(source.crop)[None])
    face = animator.edit().cpu()
    image = PasteBack(source.image, source.box, animator.image_size)(face)[0] if args.paste_back else to_uint8(face)[0]
    save_image(args.output, image)
    save_recipe(args, controls)
    print(f"edited {args.source} ({', '.join(controls.changed()) or 'no change'}) -> {args.output}")
    return 0
