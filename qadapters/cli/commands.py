"""The ``qadapters`` command line.

Each command lives in its own module, which provides ``add_arguments(parser)`` and ``run(args)``;
this file only lists them (imported when the command runs, so ``qadapters --help`` stays fast and
optional packages stay optional).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

#: command name -> (module, one-line help)
_EXPERIMENTS = "qadapters.experiments"
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("qadapters.cli.export", "write an adapter circuit as text, QASM 3, a drawing, JSON"),
    "count": ("qadapters.cli.count", "trainable parameters and bytes of each family vs LoRA"),
    "demo": (f"{_EXPERIMENTS}.demo", "the main experiment: adapt an MLP from digits 0-4 to 5-9"),
    "finetune": (f"{_EXPERIMENTS}.finetune", "fine-tune MiniLM on a text classification set"),
    "qnn-demo": (f"{_EXPERIMENTS}.qnn_demo", "adapt a quantum neural network with an LCU adapter"),
    "bp-study": (f"{_EXPERIMENTS}.bp_study", "barren plateaus: exact gradient variance vs qubits"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qadapters`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="qadapters")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(p)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (ValueError, OSError, re.error, MemoryError) as err:  # a user's mistake: one line
        # (MemoryError: the size guards of backends.budget refuse before allocating)
        print(f"qadapters {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qadapters {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    """The error's message on one line (an ``OSError`` with its path, as ``strerror: path``)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return " ".join(str(err).split())


if __name__ == "__main__":
    raise SystemExit(main())
