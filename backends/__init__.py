"""Compilers and executors for :mod:`circuits`: exact PyTorch simulation now, quantum SDKs in
their own modules (imported on demand so that their packages stay optional)."""
