"""``transformers.Trainer`` integration: checkpoints that hold the adapters only.

A plain ``Trainer`` can train a :class:`~qadapters.model.QAdapterModel` (an ``nn.Module`` that
forwards to the Hugging Face model) but it special-cases only ``PreTrainedModel`` and ``PeftModel``:
it reads dataset columns and label names from ``QAdapterModel.forward(*args, **kwargs)``, so it
needs ``remove_unused_columns=False`` and ``label_names=["labels"]``, and it writes the *whole*
state dict (frozen base included) to ``model.safetensors`` in every checkpoint.
:class:`QAdapterTrainer` (``Trainer`` + :class:`QAdapterTrainerMixin`) overrides the hooks that
handle model files, the same places where ``Trainer`` special-cases PEFT models:

- ``_save``: :meth:`QAdapterModel.save_pretrained` (``adapter_config.json`` and
  ``adapter_model.safetensors`` of every adapter: the default one at the top, others in
  ``<name>/``), then the tokenizer / processor and ``training_args.bin``;
- ``_load_from_checkpoint`` (``resume_from_checkpoint``) and ``_load_best_model``
  (``load_best_model_at_end``): load the adapters' tensors, after checking that each
  checkpoint config equals the model's;
- label names and dataset columns come from the wrapped model's ``forward`` signature;
- ``train`` first runs :func:`~.distributed.check_config_consistent` across ranks;
- ``create_optimizer`` gives each adapter family its recommended learning rate
  (:func:`qadapters.families.optim.param_groups`, times ``adapter_lr_scale``, default 1) and the
  other trainable tensors ``args.learning_rate``.

Optimizer, scheduler and RNG states are ``Trainer``'s own files and hold adapter state only.
FSDP, DeepSpeed and SageMaker model parallelism keep ``Trainer``'s own (full state dict) paths.
To combine with another ``Trainer`` subclass: ``class T(QAdapterTrainerMixin, SFTTrainer)``.

``transformers`` is imported only when ``QAdapterTrainer`` is first accessed.

Example:
    >>> from qadapters.integrations.trainer import QAdapterTrainer
    >>> trainer = QAdapterTrainer(model=model, args=args, train_dataset=train)
    >>> trainer.train()                       # checkpoint-*/adapter_model.safetensors
    >>> QAdapterModel.from_pretrained(fresh_base, "out/checkpoint-500")
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from qadapters.config import CONFIG_NAME
from qadapters.families.optim import check_rate, param_groups
from qadapters.integrations.distributed import check_config_consistent, config_differences
from qadapters.layers import DEFAULT_ADAPTER
from qadapters.model import QAdapterModel
from qadapters.serialization import WEIGHTS_NAME, apply_adapter, read_adapter

if TYPE_CHECKING:
    from transformers import Trainer as QAdapterTrainer  # noqa: F401 (the class derives from it)


def adapter_directory(
    directory: str | os.PathLike[str], adapter_name: str = DEFAULT_ADAPTER
) -> Path:
    """Where :meth:`QAdapterModel.save_pretrained` puts adapter ``adapter_name`` below
    ``directory``: the top for ``"default"``, ``directory/<name>`` for the others."""
    d = Path(directory)
    return d if adapter_name == DEFAULT_ADAPTER else d / adapter_name


def is_adapter_checkpoint(
    directory: str | os.PathLike[str], adapter_name: str = DEFAULT_ADAPTER
) -> bool:
    """Whether ``directory`` holds ``adapter_config.json`` and ``adapter_model.safetensors`` of
    adapter ``adapter_name`` (at its place in the layout of :func:`adapter_directory`)."""
    d = adapter_directory(directory, adapter_name)
    return (d / CONFIG_NAME).is_file() and (d / WEIGHTS_NAME).is_file()


def load_adapter_checkpoint(model: QAdapterModel, directory: str | os.PathLike[str]) -> None:
    """Load the adapter tensors of a checkpoint into ``model`` (built with the same configs):
    every adapter of the model that the checkpoint holds, the active one required.

    Raises:
        FileNotFoundError: the checkpoint lacks the active adapter (its path named).
        ValueError: when a checkpoint's config differs from the model's (fields named), or
            when the tensors do not fit (see :func:`~qadapters.serialization.load_adapter`).
    """
    for name, config in model.qadapter_configs.items():
        d = adapter_directory(directory, name)
        if not is_adapter_checkpoint(d):
            if name == model.active_adapter:
                raise FileNotFoundError(f"no adapter {name!r} in checkpoint {os.fspath(d)!r}")
            continue
        saved = read_adapter(d)  # its config with the defaults of its save (Note [saved defaults])
        if saved.config != config:
            diffs = config_differences(saved.config.to_dict(), config.to_dict())
            raise ValueError(
                f"checkpoint {os.fspath(d)!r} was saved with another adapter config "
                "(checkpoint vs model): " + "; ".join(diffs)
            )
        apply_adapter(model, saved, name)


def _active(model: QAdapterModel) -> str:
    return model.active_adapter or DEFAULT_ADAPTER


class QAdapterTrainerMixin:
    """``Trainer`` hooks for :class:`QAdapterModel` (see the module docstring).

    Put it first in the bases of a ``transformers.Trainer`` subclass. Models that are not a
    ``QAdapterModel`` fall through to ``Trainer``'s own behaviour.
    """

    model: nn.Module
    args: Any
    accelerator: Any
    state: Any

    def __init__(self, *args: Any, adapter_lr_scale: float | None = 1.0, **kwargs: Any) -> None:
        check_rate("adapter_lr_scale", adapter_lr_scale, none_allowed=True)
        #: circuit adapters train at their family's recommended rate times this (None: every
        #: tensor at ``args.learning_rate``, as a plain ``Trainer``)
        self.adapter_lr_scale = adapter_lr_scale
        super().__init__(*args, **kwargs)
        from transformers.utils import can_return_loss, find_labels

        model = self._qadapter_model()
        if model is not None:
            base_cls = type(model.base_model)
            if self.args.label_names is None:
                self.label_names = find_labels(base_cls)
            self.can_return_loss = can_return_loss(base_cls)

    def _qadapter_model(self) -> QAdapterModel | None:
        """The wrapped :class:`QAdapterModel`; ``None`` for other models and under FSDP or
        DeepSpeed, whose sharded paths stay ``Trainer``'s own."""
        if getattr(self, "is_fsdp_enabled", False) or getattr(self, "is_deepspeed_enabled", False):
            return None
        model = self.model
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None:
            model = accelerator.unwrap_model(model)
        return model if isinstance(model, QAdapterModel) else None

    def create_optimizer(self, model: Any = None) -> Any:
        """``Trainer``'s optimizer class and settings over
        :func:`qadapters.families.optim.param_groups`: each adapter family at its recommended
        rate times :attr:`adapter_lr_scale`, every other trainable tensor (a new head,
        ``modules_to_save``) at ``args.learning_rate``; the scheduler scales every group alike.
        ``Trainer``'s own grouping for other models, with ``adapter_lr_scale=None``, or when an
        optimizer was given."""
        qmodel = self._qadapter_model()
        if self.optimizer is not None or qmodel is None or self.adapter_lr_scale is None:
            return super().create_optimizer(model)  # type: ignore[misc]
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, qmodel)  # type: ignore[attr-defined]
        if "params" in kwargs or "model" in kwargs:  # optimizers that group for themselves
            return super().create_optimizer(model)  # type: ignore[misc]
        groups = param_groups(
            qmodel,
            lr_scale=self.adapter_lr_scale,
            other_lr=self.args.learning_rate,
            weight_decay=self.args.weight_decay,
        )
        self.optimizer = cls(groups, **kwargs)
        return self.optimizer

    def _set_signature_columns_if_needed(self) -> None:
        model = self._qadapter_model()
        if model is None or getattr(self, "_signature_columns", None) is not None:
            super()._set_signature_columns_if_needed()  # type: ignore[misc]
            return
        columns = list(inspect.signature(model.base_model.forward).parameters)
        self._signature_columns = columns + sorted({"label", "label_ids", *self.label_names})

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.train`` after checking that every rank holds the same adapter config."""
        model = self._qadapter_model()
        if model is not None:
            check_config_consistent(model.qadapter_config)
        return super().train(*args, **kwargs)  # type: ignore[misc]

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        model = self._qadapter_model()
        if model is None:
            super()._save(output_dir, state_dict)  # type: ignore[misc]
            return
        if not self.args.should_save:
            return
        import torch
        from transformers.trainer import TRAINING_ARGS_NAME

        out = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(out, exist_ok=True)
        model.save_pretrained(out)
        processor = getattr(self, "processing_class", None)
        if processor is None:
            processor = getattr(getattr(self, "data_collator", None), "tokenizer", None)
        if processor is not None:
            processor.save_pretrained(out)
        torch.save(self.args, os.path.join(out, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        target = model if isinstance(model, QAdapterModel) else self._qadapter_model()
        if target is None or not is_adapter_checkpoint(resume_from_checkpoint, _active(target)):
            super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
            return
        load_adapter_checkpoint(target, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        model = self._qadapter_model()
        if model is None or best is None or not is_adapter_checkpoint(best, _active(model)):
            super()._load_best_model()  # type: ignore[misc]
            return
        load_adapter_checkpoint(model, best)


def _build_trainer_class() -> type:
    from transformers import Trainer

    cls = type("QAdapterTrainer", (QAdapterTrainerMixin, Trainer), {})
    cls.__module__ = __name__
    cls.__doc__ = "``transformers.Trainer`` whose checkpoints hold qadapters only (module doc)."
    return cls


def __getattr__(name: str) -> Any:
    if name == "QAdapterTrainer":  # built on first access so that importing us is cheap
        cls = _build_trainer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
