"""Write the golden output files of the tiny models (``tests/goldens/<case>.safetensors``).

    python scripts/make_goldens.py            # every case in ostnet.models.goldens.GOLDEN_CASES
    python scripts/make_goldens.py tiny       # one case
    python scripts/make_goldens.py --check    # compare instead of writing; exit 1 on a difference

Regenerate a golden only when a change of the model's computation is intended, and say so in the commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ostnet.io.atomic import atomic_write
from ostnet.models.goldens import ATOL, GOLDEN_CASES, GOLDEN_DIR, RTOL, golden_case, golden_metadata, golden_outputs

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the stored files instead of writing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = [golden_case(name) for name in args.cases] if args.cases else list(GOLDEN_CASES)
    failed = 0
    for case in cases:
        path = ROOT / GOLDEN_DIR / f"{case.name}.safetensors"
        outputs = golden_outputs(case.config(), case.seed)
        if not args.check:
            atomic_write(path, lambda tmp, o=outputs, c=case: save_file(o, tmp, metadata=golden_metadata(c)))
            print(f"{path.relative_to(ROOT)}: {len(outputs)} tensors, {path.stat().st_size} bytes")
            continue
        stored = load_file(path)
        worst = max((outputs[k] - stored[k]).abs().max().item() for k in stored)
        same = stored.keys() == outputs.keys() and all(
            torch.allclose(outputs[k], stored[k], atol=ATOL, rtol=RTOL) for k in stored
        )
        failed += not same
        print(f"{case.name}: {'same' if same else 'DIFFERENT'} (largest difference {worst:.2e})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
