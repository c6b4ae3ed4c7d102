"""The command table: a user's mistake is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import re
import sys
import types

import pytest

from qadapters.cli import commands as commands


def _command(exc: BaseException | None) -> types.ModuleType:
    module = types.ModuleType("fake_command")

    def add_arguments(parser) -> None:
        parser.add_argument("--n", type=int, default=1)

    def run(args) -> int:
        if exc is not None:
            raise exc
        return 0

    module.add_arguments = add_arguments  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    return module


#: (what the command raises, exit code, the one line printed)
CASES = [
    (None, 0, None),
    (ValueError("expected rank >= 1;\n  found 0"), 2,
     "qadapters fake: error: expected rank >= 1; found 0"),
    (FileNotFoundError(2, "No such file or directory", "/x/y"), 2,
     "qadapters fake: error: No such file or directory: /x/y"),
    (IsADirectoryError(21, "Is a directory", "/tmp"), 2,
     "qadapters fake: error: Is a directory: /tmp"),
    (re.error("missing ), unterminated subpattern"), 2,
     "qadapters fake: error: missing ), unterminated subpattern"),
    (MemoryError("a 30-qubit unitary needs 16.0 GiB, over the budget of 4.0 GiB"), 2,
     "qadapters fake: error: a 30-qubit unitary needs 16.0 GiB, over the budget of 4.0 GiB"),
    (KeyboardInterrupt(), 130, "qadapters fake: interrupted"),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "code", "line"), CASES)
def test_errors_are_one_line_and_exit_2(monkeypatch, capsys, exc, code, line) -> None:
    monkeypatch.setitem(sys.modules, "fake_command", _command(exc))
    monkeypatch.setitem(commands.COMMANDS, "fake", ("fake_command", "a fake command"))
    assert commands.main(["fake"]) == code
    err = capsys.readouterr().err
    if line is None:
        assert err == ""
    else:
        assert err == line + "\n"


def test_a_bug_is_not_hidden(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "fake_command", _command(ZeroDivisionError("bug")))
    monkeypatch.setitem(commands.COMMANDS, "fake", ("fake_command", "a fake command"))
    with pytest.raises(ZeroDivisionError):
        commands.main(["fake"])
