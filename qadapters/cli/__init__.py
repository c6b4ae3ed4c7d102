"""The ``qadapters`` command line: the command table (:mod:`.commands`), ``export`` and
``count``; the experiment commands live in :mod:`qadapters.experiments`."""

from qadapters.cli.commands import main

__all__ = ["main"]
