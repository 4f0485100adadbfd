"""Run Flotilla's benchmarks.

Usage: ``.venv/bin/python bench/run.py [--quick] [--only NAME ...] [--list]``
(or ``python -m bench.run``). See ``bench/README.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    """Make ``bench.*`` importable when run as a script, then hand over to the runner."""
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench._runner import main as run_main

    return run_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
