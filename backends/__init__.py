"""Compilers and executors for :mod:`circuits`: exact PyTorch simulation now, quantum SDKs in
their own modules (imported on demand so that their packages stay optional).

:func:`resolve` (from :mod:`backends.executors`) turns a spec such as ``"aer"`` or
``"ibm:fake_manila"`` into an :class:`~backends.executors.Executor`; it is loaded on first use,
so ``import backends`` stays light."""

from __future__ import annotations

__all__ = ["Executor", "resolve"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from backends import executors

        return getattr(executors, name)
    raise AttributeError(f"module 'backends' has no attribute {name!r}")
