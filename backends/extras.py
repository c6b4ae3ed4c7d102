"""The install hint for a backend whose optional SDK is missing (one message for every backend).

Example:
    >>> str(missing_extra("backends.aer", "qiskit and qiskit-aer", "qiskit"))
    'backends.aer needs qiskit and qiskit-aer; install them with `pip install qadapters[qiskit]`'
"""

from __future__ import annotations


def missing_extra(module: str, needs: str, extra: str) -> ImportError:
    """The ``ImportError`` to raise from ``module`` when ``needs`` (the packages of the
    ``qadapters[extra]`` extra) cannot be imported."""
    pronoun = "them" if " and " in needs else "it"
    return ImportError(
        f"{module} needs {needs}; install {pronoun} with `pip install qadapters[{extra}]`"
    )
