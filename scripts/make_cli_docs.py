"""Write docs/cli.md, the table of every ``ostnet`` command and option, from the commands' declarations.

python scripts/make_cli_docs.py          # write it
python scripts/make_cli_docs.py --check  # exit 1 when it is stale (tests/test_cli_docs.py does the same)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ostnet.cli import reference_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/cli.md is up to date")
    args = parser.parse_args()
    text = reference_markdown()
    if args.check:
        stale = not DOCS.is_file() or DOCS.read_text(encoding="utf-8") != text
        print(f"{DOCS}: {'stale: run python scripts/make_cli_docs.py' if stale else 'up to date'}")
        return int(stale)
    DOCS.write_text(text, encoding="utf-8")
    print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
