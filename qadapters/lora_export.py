"""``save_as_lora``: any circuit adapter as a standard PEFT LoRA checkpoint.

The directory written holds ``adapter_config.json`` (``peft_type`` ``"LORA"``) and
``adapter_model.safetensors`` with the keys ``base_model.model.<module>.lora_A.weight`` (``r × in``)
and ``base_model.model.<module>.lora_B.weight`` (``out × r``), which
``peft.PeftModel.from_pretrained(base, path)`` loads with nothing of this package installed, and
which LoRA servers (vLLM, TGI, diffusers, ...) read. ``lora_alpha = r``, so PEFT's scaling
``lora_alpha / r`` is 1 and ``ΔW = B A`` exactly. Every layer gets the same ``r`` (layers that need
fewer are padded with zero rows / columns), because not every server reads ``rank_pattern``.

Note [LoRA factors of a circuit adapter]
----------------------------------------
LoRA adds ``B A x`` to a frozen layer ``y = W0 x + b``; an adapter's update is whatever
``merge(W0, b) − (W0, b)`` is. Two cases:

- *Low-rank by construction* (``pauli``, ``taylor``): ``ΔW = U_K diag(s) V_Kᵀ · scale`` with
  ``U_K`` (``out × K``), ``V_K`` (``in × K``). Then ``B = U_K diag(s · scale)``, ``A = V_Kᵀ`` is
  exact at ``r = K``. A smaller ``r`` truncates without forming ``ΔW``'s SVD: with
  ``U_K = Q_u R_u`` and ``V_K = Q_v R_v`` (thin QR), ``ΔW = Q_u C Q_vᵀ`` for the ``K × K`` core
  ``C = R_u diag(s · scale) R_vᵀ``, so the SVD ``C = P Σ Qᵀ`` gives ``ΔW``'s own
  (``Q_u P, Σ, Q_v Q``). QR rather than assuming orthonormal columns keeps this exact for a
  Taylor map whose truncated series is orthonormal only approximately.
- *Dense updates* (``hamming``, and any other family): ``ΔW`` is formed from ``merge`` and cut
  by its SVD ``ΔW = P Σ Qᵀ`` to ``B = P_r Σ_r``, ``A = Q_rᵀ``, the best rank-r approximation in
  Frobenius norm (Eckart–Young), with relative error ``sqrt(Σ_{i>r} σ_i²) / sqrt(Σ_i σ_i²)``. The
  multiplicative ``compound`` family (``y = (W0 x + b) · M``) merges to ``(Mᵀ W0, Mᵀ b)``, so
  ``ΔW = (Mᵀ − I) W0`` and its bias changes too, by ``Δb = (Mᵀ − I) b``.

A LoRA checkpoint has no bias update unless its config says ``lora_bias: true`` (PEFT then
gives ``lora_B`` a bias, stored as ``lora_B.bias``; scaled by 1 here, it is ``Δb`` exactly).
:func:`save_as_lora` turns it on only when some bias changes (``lora_bias=None``); ``False``
drops the bias update and reports its error (not every server reads ``lora_B.bias``).

Hugging Face ``Conv1D`` layers (GPT-2) store ``W0`` as ``in × out``; the adapter and LoRA's
``B A`` both see ``out × in``, so ``A`` and ``B`` are written as for ``nn.Linear`` and the
config says ``fan_in_fan_out: true`` (which PEFT uses when merging).

The two files are written as a transaction (Note [adapter directory as a transaction] in
:mod:`qadapters.serialization`): the weights first, carrying the config they belong with in
their metadata (``qadapters.lora_config``), then the config.

Example:
    >>> export = save_as_lora(model, "lora_out")           # doctest: +SKIP
    save_as_lora: r=4 LoRA of 2 layer(s) written to lora_out; ...
    >>> from peft import PeftModel                          # doctest: +SKIP
    >>> served = PeftModel.from_pretrained(fresh_base, "lora_out")  # no qadapters needed
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from backends import budget
from qadapters.config import CONFIG_NAME
from qadapters.families.base import Adapter
from qadapters.families.pauli import SVDFormAdapter
from qadapters.files import atomic_write, write_json
from qadapters.layers import QAdapterLinear, is_conv1d

if TYPE_CHECKING:
    from qadapters.model import QAdapterModel

WEIGHTS_NAME = "adapter_model.safetensors"
#: the relative error ``rank=None`` aims for on families whose update is not low-rank
DEFAULT_TOLERANCE = 1e-3
_KEY_PREFIX = "base_model.model."
_META_CONFIG = "qadapters.lora_config"
_META_REPORT = "qadapters.lora_export"


@dataclass(frozen=True)
class LoraExport:
    """What :func:`save_as_lora` wrote.

    Attributes:
        path: the checkpoint directory.
        rank: the LoRA ``r`` written (``lora_alpha`` is the same, so the scaling is 1).
        errors: adapted layer name -> ``‖ΔW − B A‖_F / ‖ΔW‖_F`` of what was written (0 for a
            layer whose update is zero).
        lora_bias: whether the checkpoint carries bias updates (``lora_B.bias``).
        bias_errors: layer name -> ``‖Δb‖ / ‖b + Δb‖``, the relative error of the exported
            layer's bias, for each layer whose bias update was dropped (``lora_bias=False``).
        auto_rank: ``rank`` was chosen by :func:`save_as_lora` (``rank=None``).
    """

    path: Path
    rank: int
    errors: dict[str, float]
    lora_bias: bool = False
    bias_errors: dict[str, float] = field(default_factory=dict)
    auto_rank: bool = False

    @property
    def max_error(self) -> float:
        """The largest relative error over the layers (0.0 for none)."""
        return max(self.errors.values(), default=0.0)


@dataclass(frozen=True)
class _LayerUpdate:
    """One layer's update in float64: its LoRA factors (before padding) and the dense truth."""

    b: Tensor  # (out, r_layer)
    a: Tensor  # (r_layer, in)
    delta: Tensor  # dense ΔW (out, in), from merge
    bias_delta: Tensor | None  # Δb, or None when the bias does not change
    merged_bias: Tensor | None
    conv1d: bool
    dtype: torch.dtype  # dtype the factors are saved in


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int or None; found {value!r}")
    return value


def _tail_errors(sigma: Tensor) -> Tensor:
    """``e[r] = sqrt(Σ_{i>=r} σ_i²) / sqrt(Σ σ_i²)`` for r = 0..len(σ) (``e[len] = 0``)."""
    sq = sigma.double() ** 2
    tail = torch.cat([sq.flip(0).cumsum(0).flip(0), sq.new_zeros(1)])
    total = float(tail[0])
    return (tail / total).sqrt() if total > 0 else torch.zeros_like(tail)


def _rank_for(sigma: Tensor, tolerance: float) -> int:
    """The smallest r whose truncation error is at most ``tolerance`` (full rank otherwise)."""
    errs = _tail_errors(sigma)
    return int(torch.nonzero(errs <= tolerance)[0, 0])


def _truncate_svd_form(u: Tensor, coef: Tensor, v: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Best rank-``rank`` factors of ``u diag(coef) vᵀ`` through its ``K × K`` core (see
    Note [LoRA factors of a circuit adapter])."""
    qu, ru = torch.linalg.qr(u)
    qv, rv = torch.linalg.qr(v)
    p, sigma, qh = torch.linalg.svd((ru * coef) @ rv.T)
    return (qu @ p[:, :rank]) * sigma[:rank], qh[:rank] @ qv.T


def _save_dtype(weight_dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if weight_dtype == torch.float64 else torch.float32


@torch.no_grad()
def _layer_update(name: str, choice: _Chosen, rank: int | None, tolerance: float) -> _LayerUpdate:
    """The LoRA factors of one layer (``rank=None``: exact for SVD-form adapters, else the
    smallest rank within ``tolerance``)."""
    layer, adapter = choice.layer, choice.adapter
    base = layer.base_layer
    conv1d = is_conv1d(base)
    weight = base.weight
    if not isinstance(weight, Tensor):
        raise TypeError(f"layer {name!r}: expected a weight tensor; found {type(weight)}")
    out_f, in_f = layer.out_features, layer.in_features
    budget.check(
        f"the dense update of layer {name!r} ({out_f} × {in_f}, float64)",
        8 * (4 * out_f * in_f + (out_f + in_f) * min(out_f, in_f)),
    )
    w0 = (weight.t() if conv1d else weight).detach().to(torch.float64)
    bias = getattr(base, "bias", None)
    b0 = bias.detach().to(torch.float64) if isinstance(bias, Tensor) else None
    merged_w, merged_b = adapter.merge(w0.clone(), None if b0 is None else b0.clone())
    merged_w = merged_w.to(torch.float64)
    bad = int((~torch.isfinite(merged_w)).sum())
    if bad:
        raise ValueError(
            f"layer {name!r}: the {choice.family} adapter's update holds {bad} non-finite "
            "value(s); nothing was written"
        )
    delta = merged_w - w0
    bias_delta = None
    if b0 is not None and merged_b is not None:
        merged_b = merged_b.to(torch.float64)
        d = merged_b - b0
        bias_delta = d if bool(torch.any(d != 0)) else None
    if isinstance(adapter, SVDFormAdapter):
        u, v = (f.detach().to(torch.float64) for f in adapter.factors())
        coef = adapter.s.detach().to(torch.float64) * adapter.scale
        if rank is None or rank >= adapter.rank:
            b, a = u * coef, v.T
        else:
            b, a = _truncate_svd_form(u, coef, v, rank)
    else:
        p, sigma, qh = torch.linalg.svd(delta, full_matrices=False)
        r = _rank_for(sigma, tolerance) if rank is None else min(rank, sigma.numel())
        b, a = p[:, :r] * sigma[:r], qh[:r]
    return _LayerUpdate(b, a, delta, bias_delta, merged_b, conv1d, _save_dtype(weight.dtype))


def _pad(b: Tensor, a: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Zero columns of ``b`` and zero rows of ``a`` up to ``rank`` (``B A`` unchanged)."""
    extra = rank - b.shape[1]
    if extra <= 0:
        return b, a
    return (
        torch.cat([b, b.new_zeros(b.shape[0], extra)], dim=1),
        torch.cat([a, a.new_zeros(extra, a.shape[1])], dim=0),
    )


def _relative_error(delta: Tensor, approx: Tensor) -> float:
    norm = float(torch.linalg.matrix_norm(delta))
    if norm == 0.0:
        return float(torch.linalg.matrix_norm(approx))  # 0 unless something was made up
    return float(torch.linalg.matrix_norm(delta - approx)) / norm


def _plain_module_names(model: QAdapterModel) -> list[str]:
    """Module names of the base model as it was before injection (adapter internals left out)."""
    layers = model.qadapter_layers()
    inside = tuple(f"{n}." for n in layers)
    return [n for n, _ in model.base_model.named_modules() if n and not n.startswith(inside)]


def _peft_selects(targets: list[str], key: str) -> bool:
    """PEFT's rule for a list of ``target_modules``: the name itself or a ``.``-suffix."""
    return key in targets or any(key.endswith(f".{t}") for t in targets)


def peft_target_modules(names: list[str], all_names: list[str]) -> list[str] | str:
    """The shortest ``target_modules`` under which PEFT selects exactly ``names``.

    Tries the last name components (``["c_attn"]``, as people write them), then the full
    names, then one regex of the full names (PEFT ``re.fullmatch``-es a string).

    Args:
        names: the modules to select.
        all_names: every module name of the base model.

    Returns:
        A list of names or a regex string.
    """
    want = set(names)
    for candidate in (sorted({n.rpartition(".")[2] for n in names}), sorted(want)):
        if {k for k in all_names if _peft_selects(candidate, k)} == want:
            return candidate
    return "|".join(re.escape(n) for n in sorted(want))


def _name_or_path(model: QAdapterModel) -> str | None:
    base = model.base_model
    for value in (getattr(base, "name_or_path", None), getattr(base, "_name_or_path", None)):
        if isinstance(value, str) and value:
            return value
    return None


def lora_config(
    *,
    rank: int,
    target_modules: list[str] | str,
    fan_in_fan_out: bool,
    lora_bias: bool,
    modules_to_save: list[str] | None,
    base_model_name_or_path: str | None,
) -> dict[str, Any]:
    """The ``adapter_config.json`` of a plain LoRA with scaling 1 (``lora_alpha = r``).

    Only long-standing LoRA fields are written (no ``peft_version`` or newer options), so
    PEFT releases of any age and servers that parse the file themselves read it; a PEFT older
    than ``lora_bias`` ignores that key with a warning.

    Returns:
        The config as a JSON-ready dict.
    """
    return {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": base_model_name_or_path,
        "revision": None,
        "inference_mode": True,
        "r": rank,
        "lora_alpha": rank,
        "lora_dropout": 0.0,
        "target_modules": target_modules,
        "fan_in_fan_out": fan_in_fan_out,
        "bias": "none",
        "lora_bias": lora_bias,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "modules_to_save": modules_to_save,
        "rank_pattern": {},
        "alpha_pattern": {},
        "layers_to_transform": None,
        "layers_pattern": None,
    }


@dataclass(frozen=True)
class _Chosen:
    """The adapter of one layer that is exported."""

    layer: QAdapterLinear
    adapter: Adapter
    family: str


def _defines(obj: object, name: str) -> bool:
    """Whether ``obj``'s class itself defines ``name`` (a Hugging Face base model has an
    ``active_adapter`` of its own, which the wrapper's attribute forwarding would reach)."""
    return inspect.getattr_static(type(obj), name, None) is not None


def _choose(model: QAdapterModel, adapter_name: str | None) -> tuple[dict[str, _Chosen], list[str]]:
    """The layers holding the adapter to export (``None``: the active one), and its
    ``modules_to_save``.

    Works with layers that hold one adapter (``layer.adapter``) and with layers of named
    adapters (``layer.get_adapter(name)``, ``layer.adapter_families``), where a layer without
    the named adapter is left out.

    Raises:
        ValueError: no layer holds an adapter of that name (the names present are listed).
    """
    name = adapter_name
    if name is None and _defines(model, "active_adapter"):
        name = model.active_adapter
    chosen: dict[str, _Chosen] = {}
    present: set[str] = set()
    for lname, layer in model.qadapter_layers().items():
        if _defines(layer, "get_adapter"):
            families: dict[str, str] = dict(layer.adapter_families)
            present.update(families)
            if name in families:
                chosen[lname] = _Chosen(layer, layer.get_adapter(name), families[name])
        elif adapter_name in (None, "default"):
            present.add("default")
            chosen[lname] = _Chosen(layer, layer.adapter, layer.family)
        else:
            present.add("default")
    if not chosen and present:
        raise ValueError(
            f"adapter_name: expected one of {sorted(present)}; found {name!r} on no layer"
        )
    if name is not None and _defines(model, "modules_to_save_of"):
        saved = model.modules_to_save_of(name)
    else:
        saved = getattr(model, "modules_to_save", None) or []
    return chosen, list(saved)


def save_as_lora(
    model: QAdapterModel,
    path: str | os.PathLike[str],
    rank: int | None = None,
    adapter_name: str | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    lora_bias: bool | None = None,
    verbose: bool = True,
) -> LoraExport:
    """Write the model's adapter as a standard PEFT LoRA checkpoint in ``path``.

    See the module docstring and Note [LoRA factors of a circuit adapter] for the factors.

    Args:
        model: the adapted model (its adapters unmerged).
        path: the checkpoint directory (created if missing; its two files replaced).
        rank: the LoRA ``r``. ``None``: exact for ``pauli`` / ``taylor`` (``r = K``); for other
            families the smallest rank whose relative error is at most ``tolerance`` in every
            layer, or the layer's full rank ``min(in, out)``. An ``r`` below ``K`` truncates
            (the error is reported); one above pads with zeros.
        adapter_name: which adapter to export (``None``: the active one).
        tolerance: the relative error ``rank=None`` aims for on dense updates.
        lora_bias: write bias updates as ``lora_B.bias``. ``None``: when some layer's bias
            changes (``compound`` on a layer with a bias); ``False``: drop them and report
            each layer's bias error in :attr:`LoraExport.bias_errors` (with a warning).
        verbose: print one line with the rank and the largest error.

    Returns:
        The directory, the rank and the per-layer relative errors ``‖ΔW − B A‖_F / ‖ΔW‖_F``.

    Raises:
        ValueError: a bad ``rank`` / ``tolerance``; no adapter layers; a merged layer (its base
            weights no longer are the ones a LoRA server adds to); a non-finite update; an
            unknown ``adapter_name``. Nothing is written then.
        MemoryError: a layer's dense update would exceed the memory budget
            (:mod:`backends.budget`).

    Example:
        >>> export = save_as_lora(model, "out", rank=8)         # doctest: +SKIP
        >>> export.rank, export.max_error < 1e-3                # doctest: +SKIP
        (8, True)
    """
    if rank is not None:
        rank = _check_int("rank", rank)
    if not (isinstance(tolerance, int | float) and 0 < tolerance < 1):
        raise ValueError(f"tolerance: expected a number in (0, 1); found {tolerance!r}")
    chosen, saved_names = _choose(model, adapter_name)
    if not chosen:
        raise ValueError(
            "nothing to export: the model holds no adapter layers (merge_and_unload() folds "
            "them into the base weights; export before merging)"
        )
    merged = sorted(n for n, layer in model.qadapter_layers().items() if layer.merged)
    if merged:
        raise ValueError(
            f"expected unmerged adapters; found merged layer(s) {merged[:5]}: call "
            "model.unmerge() first (a LoRA server adds the update to the original weights)"
        )
    updates = {n: _layer_update(n, c, rank, tolerance) for n, c in chosen.items()}
    families = {n: c.family for n, c in chosen.items()}
    extra = {
        f"{_KEY_PREFIX}{m}.{k}": t.detach().cpu().contiguous()
        for m in saved_names
        for k, t in model.base_model.get_submodule(m).state_dict().items()
    }
    all_names = _plain_module_names(model)
    r = rank if rank is not None else max(1, *(u.b.shape[1] for u in updates.values()))
    changed = {n: u for n, u in updates.items() if u.bias_delta is not None}
    use_bias = bool(changed) if lora_bias is None else bool(lora_bias)

    tensors: dict[str, Tensor] = {}
    errors: dict[str, float] = {}
    bias_errors: dict[str, float] = {}
    for name, u in updates.items():
        b, a = _pad(u.b, u.a, r)
        b, a = b.to(u.dtype).contiguous(), a.to(u.dtype).contiguous()
        errors[name] = _relative_error(u.delta, b.double() @ a.double())
        tensors[f"{_KEY_PREFIX}{name}.lora_A.weight"] = a
        tensors[f"{_KEY_PREFIX}{name}.lora_B.weight"] = b
        if use_bias:
            out_f = u.delta.shape[0]
            db = u.bias_delta if u.bias_delta is not None else u.delta.new_zeros(out_f)
            tensors[f"{_KEY_PREFIX}{name}.lora_B.bias"] = db.to(u.dtype).contiguous()
        elif u.bias_delta is not None:
            assert u.merged_bias is not None
            norm = float(torch.linalg.vector_norm(u.merged_bias))
            dropped = float(torch.linalg.vector_norm(u.bias_delta))
            bias_errors[name] = dropped / norm if norm > 0 else math.inf
    tensors.update(extra)
    if bias_errors:
        worst = max(bias_errors, key=bias_errors.__getitem__)
        warnings.warn(
            f"lora_bias=False drops the bias update of {len(bias_errors)} layer(s); the "
            f"largest relative bias error is {bias_errors[worst]:.3g} (layer {worst!r}); "
            "lora_bias=None writes them as lora_B.bias",
            stacklevel=2,
        )

    targets = peft_target_modules(list(updates), all_names)
    config = lora_config(
        rank=r,
        target_modules=targets,
        fan_in_fan_out=any(u.conv1d for u in updates.values()),
        lora_bias=use_bias,
        modules_to_save=saved_names or None,
        base_model_name_or_path=_name_or_path(model),
    )
    report = {"rank": r, "families": families, "errors": errors, "bias_errors": bias_errors}
    _write(Path(path), tensors, config, report)

    result = LoraExport(Path(path), r, errors, use_bias, bias_errors, auto_rank=rank is None)
    if verbose:
        dense = any(not isinstance(c.adapter, SVDFormAdapter) for c in chosen.values())
        _print_summary(result, tolerance if dense else None)
    return result


def _write(
    directory: Path, tensors: dict[str, Tensor], config: dict[str, Any], report: dict[str, Any]
) -> None:
    """Weights first (carrying their config), config second: Note [adapter directory as a
    transaction] in :mod:`qadapters.serialization`."""
    from safetensors.torch import save

    from qadapters.serialization import remove_stale_temporaries

    remove_stale_temporaries(directory)
    meta = {
        "format": "pt",
        _META_CONFIG: json.dumps(config),
        _META_REPORT: json.dumps(report, allow_nan=True),
    }
    atomic_write(directory / WEIGHTS_NAME, save(tensors, metadata=meta))
    write_json(directory / CONFIG_NAME, config)


def _print_summary(result: LoraExport, tolerance: float | None) -> None:
    """One line; ``tolerance`` is given when some layer's rank was cut from a dense update."""
    worst = max(result.errors, key=result.errors.__getitem__)
    how = ""
    if result.auto_rank and tolerance is not None:
        how = (
            f" (rank chosen: the smallest with relative error <= {tolerance:g} in every "
            "layer, or full rank)"
        )
    line = (
        f"save_as_lora: r={result.rank} LoRA of {len(result.errors)} layer(s) written to "
        f"{result.path}{how}; max relative error ‖ΔW − BA‖/‖ΔW‖ = {result.max_error:.3g} "
        f"(layer {worst!r})"
    )
    if result.bias_errors:
        line += f"; bias updates dropped, max bias error {max(result.bias_errors.values()):.3g}"
    print(line)
