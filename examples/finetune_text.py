"""Fine-tune all-MiniLM-L6-v2 on WordNet glosses (or your CSV/JSONL): LoRA vs circuit adapters.

A thin wrapper around ``qadapters finetune`` (see :mod:`qadapters.experiments.finetune`); every
option of the command works here, e.g.::

    python examples/finetune_text.py --max-steps 60 --per-class 100
    python examples/finetune_text.py --data my_reviews.csv --methods lora,pauli

Needs Debian's ``wordnet-base`` for the default data (``apt-get install wordnet-base``).
"""

from __future__ import annotations

import sys

from qadapters.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["finetune", *sys.argv[1:]]))
