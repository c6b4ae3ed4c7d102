"""The ``qadapters`` command line: the command table (:mod:`.main`), ``export`` and ``count``; the
experiment commands live in :mod:`qadapters.experiments`."""

from qadapters.cli.main import main

__all__ = ["main"]
