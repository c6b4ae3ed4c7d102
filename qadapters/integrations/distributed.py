"""Multi-process data-parallel training: config checks across ranks (``torch.distributed``).

A qadapters model is a plain ``nn.Module`` whose only trainable tensors are the adapters, so
``DistributedDataParallel`` (what ``torchrun``, ``accelerate`` and ``transformers.Trainer`` use)
synchronises adapter gradients with no special code. What DDP does *not* catch is ranks that
built different adapters with the same tensor shapes (another ``scale``, ``init_seed``,
``quant_bits``...): training would silently diverge. :func:`check_config_consistent` all-gathers
a fingerprint of every rank's config and raises on every rank, naming the fields that differ.
See ``docs/distributed.md`` for launching on several processes, GPUs or nodes.

Example:
    >>> dist.init_process_group("gloo")                  # e.g. under torchrun
    >>> model = get_qadapter_model(base, config)
    >>> check_config_consistent(config)                  # raises if any rank disagrees
    >>> ddp = torch.nn.parallel.DistributedDataParallel(model)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch.distributed as dist

from qadapters.config import QAdapterConfig


def config_fingerprint(config: QAdapterConfig) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys): equal iff the configs are equal."""
    return hashlib.sha256(config.to_json().encode()).hexdigest()


def config_differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """``"field: expected vs found"`` for every field where two config dicts differ.

    Args:
        expected: a config as :meth:`QAdapterConfig.to_dict` (or its JSON) gives it.
        found: another one.

    Returns:
        One line per differing field, sorted by field name; empty when they are equal.
    """
    keys = sorted(set(expected) | set(found))
    return [
        f"{k}: {expected.get(k)!r} vs {found.get(k)!r}"
        for k in keys
        if expected.get(k) != found.get(k)
    ]


def check_config_consistent(config: QAdapterConfig, group: Any = None) -> None:
    """Raise on every rank unless all ranks of ``group`` hold the same adapter config.

    A collective: every rank of the group must call it (like any ``torch.distributed`` call).
    Does nothing when ``torch.distributed`` is not initialised (single-process runs). With the
    NCCL backend, set the current CUDA device first (``torch.cuda.set_device(local_rank)``).

    Args:
        config: this rank's adapter configuration.
        group: the process group; ``None`` for the default (world) group.

    Raises:
        ValueError: when some rank's config differs from rank 0's; the message names the ranks
            and, for the first of them, each differing field with rank 0's and its value.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    mine = (config_fingerprint(config), config.to_json())
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, mine, group=group)
    ref_hash, ref_json = gathered[0]
    bad = [rank for rank, (h, _) in enumerate(gathered) if h != ref_hash]
    if not bad:
        return
    first = bad[0]
    diffs = config_differences(json.loads(ref_json), json.loads(gathered[first][1]))
    raise ValueError(
        f"qadapter config differs across ranks: ranks {bad} disagree with rank 0; rank 0 vs "
        f"rank {first}: " + "; ".join(diffs) + ". Every rank must build the same adapters."
    )
