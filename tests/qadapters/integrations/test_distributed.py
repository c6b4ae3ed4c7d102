"""Data-parallel training over 2 CPU processes (gloo) equals single-process training.

``torch.multiprocessing.spawn`` starts 2 ranks on a free localhost port. Each rank first checks
that a config that differs across ranks fails fast on every rank, then, for an additive
(``pauli``) and a multiplicative (``compound``) family, trains a tiny float64 model wrapped in
``DistributedDataParallel`` on its half of each global batch. After every backward the adapter
gradients are all-gathered and must be identical on both ranks; rank 0 saves the final adapter
tensors, which must equal plain single-process training on the full global batch to 1e-12.
A slow case runs ``QAdapterTrainer`` under ``torchrun`` (this file is the script of each rank).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from qadapters.config import QAdapterConfig
from qadapters.integrations.distributed import (
    check_config_consistent,
    config_differences,
    config_fingerprint,
)
from qadapters.model import QAdapterModel, get_qadapter_model

WORLD = 2
STEPS = 3
GLOBAL_BATCH = 8
D = 16
TOL = 1e-12  # float64; observed: 2.8e-17 (summation order of the all-reduce)
CASES = {
    "pauli": QAdapterConfig("pauli", ["query", "value"], {"rank": 2}),
    "compound": QAdapterConfig("compound", ["query", "value"], {"blocks": 2}),
}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.query, self.value, self.head = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.query(x)) * self.value(x))


def build(config: QAdapterConfig) -> QAdapterModel:
    model = get_qadapter_model(Tiny().double(), config)
    torch.manual_seed(1)  # away from identity, so every adapter tensor gets a gradient
    for layer in model.qadapter_layers().values():
        layer.adapter.reset_away_from_identity(0.3)
    return model


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(GLOBAL_BATCH, D, generator=g, dtype=torch.float64)
    return x, torch.randn(GLOBAL_BATCH, 3, generator=g, dtype=torch.float64)


def trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n.removeprefix("module."): p for n, p in model.named_parameters() if p.requires_grad}


def train(model: nn.Module, shard: slice, on_step=None) -> None:
    """SGD with momentum on ``shard`` of every global batch (mean squared error)."""
    opt = torch.optim.SGD(trainable(model).values(), lr=0.1, momentum=0.9)
    for step in range(STEPS):
        x, y = batch(step)
        opt.zero_grad()
        nn.functional.mse_loss(model(x[shard]), y[shard]).backward()
        if on_step is not None:
            on_step(model)
        opt.step()


def _grad_spread(model: nn.Module) -> float:
    """Max |grad(rank r) − grad(rank 0)| over the adapter tensors, all-gathered."""
    flat = torch.cat([p.grad.reshape(-1) for p in trainable(model).values()])
    gathered = [torch.empty_like(flat) for _ in range(WORLD)]
    dist.all_gather(gathered, flat)
    return max(float((g - gathered[0]).abs().max()) for g in gathered)


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )  # fmt: skip
    try:
        report: dict = {}
        mismatched = QAdapterConfig("pauli", ["query", "value"], {"rank": 2 + rank})
        try:
            check_config_consistent(mismatched)
            report["mismatch_error"] = None
        except ValueError as err:
            report["mismatch_error"] = str(err)
        check_config_consistent(CASES["pauli"])  # equal configs pass
        per_rank = GLOBAL_BATCH // WORLD
        shard = slice(rank * per_rank, (rank + 1) * per_rank)
        for family, config in CASES.items():
            spreads: list[float] = []
            ddp = DistributedDataParallel(build(config))
            train(ddp, shard, on_step=lambda m, s=spreads: s.append(_grad_spread(m)))
            report[family] = max(spreads)
            if rank == 0:
                torch.save({n: p.detach() for n, p in trainable(ddp).items()}, f"{out}/{family}.pt")
        Path(out, f"rank{rank}.json").write_text(json.dumps(report))
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory) -> Path:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return out


def _report(out: Path, rank: int) -> dict:
    return json.loads((out / f"rank{rank}.json").read_text())


@pytest.mark.parametrize("family", sorted(CASES))
def test_ddp_gradients_are_synchronised(two_rank_run: Path, family: str) -> None:
    for rank in range(WORLD):
        assert _report(two_rank_run, rank)[family] == 0.0  # identical on every rank


@pytest.mark.parametrize("family", sorted(CASES))
def test_two_ranks_equal_single_process_on_the_global_batch(two_rank_run, family) -> None:
    ddp_params = torch.load(two_rank_run / f"{family}.pt")
    single = build(CASES[family])
    start = {n: p.detach().clone() for n, p in trainable(single).items()}
    train(single, slice(None))
    ref = trainable(single)
    assert set(ddp_params) == set(ref)
    for name, p in ddp_params.items():
        torch.testing.assert_close(p, ref[name].detach(), rtol=0, atol=TOL)
        assert not torch.equal(p, start[name]), name  # the run did move every tensor


def test_mismatched_configs_fail_fast_on_every_rank(two_rank_run: Path) -> None:
    for rank in range(WORLD):
        msg = _report(two_rank_run, rank)["mismatch_error"]
        assert msg is not None, f"rank {rank} did not raise"
        assert "ranks [1] disagree with rank 0" in msg
        assert "options: {'rank': 2} vs {'rank': 3}" in msg


def test_single_process_check_is_a_no_op_and_diffs_name_fields() -> None:
    assert not dist.is_initialized()
    check_config_consistent(CASES["pauli"])  # nothing to compare with
    a, b = CASES["pauli"], QAdapterConfig("pauli", ["query"], {"rank": 2}, init_seed=3)
    assert config_fingerprint(a) != config_fingerprint(b)
    assert config_fingerprint(a) == config_fingerprint(QAdapterConfig.from_json(a.to_json()))
    assert config_differences(a.to_dict(), b.to_dict()) == [
        "init_seed: 0 vs 3",
        "target_modules: ['query', 'value'] vs ['query']",
    ]


# --- transformers.Trainer under torchrun (slow: 2 processes import transformers) -----------------
def _trainer_main(out: str) -> None:
    """Entry point of each torchrun rank: QAdapterTrainer on a tiny BERT classifier."""
    from qadapters.integrations.trainer import QAdapterTrainer
    from tests.qadapters.test_trainer import CFG, args, dataset, fresh_base

    torch.set_num_threads(1)
    model = get_qadapter_model(fresh_base(), CFG)
    trainer = QAdapterTrainer(model=model, args=args(Path(out)), train_dataset=dataset())
    trainer.train()
    assert trainer.args.world_size == WORLD and dist.get_backend() == "gloo"
    flat = torch.cat([p.detach().reshape(-1) for p in trainable(model).values()])
    gathered = [torch.empty_like(flat) for _ in range(WORLD)]
    dist.all_gather(gathered, flat)
    Path(out, f"spread{dist.get_rank()}.txt").write_text(
        str(max(float((g - gathered[0]).abs().max()) for g in gathered))
    )


@pytest.mark.slow
def test_trainer_under_torchrun_keeps_ranks_in_step(tmp_path: Path) -> None:
    from tests.qadapters.test_trainer import fresh_base

    root = Path(__file__).resolve().parents[2]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(WORLD),
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        str(Path(__file__).resolve()), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in range(WORLD):
        assert float((tmp_path / f"spread{rank}.txt").read_text()) == 0.0
    ckpt = tmp_path / "checkpoint-4"
    assert (ckpt / "adapter_model.safetensors").is_file()
    assert not (ckpt / "model.safetensors").exists()
    QAdapterModel.from_pretrained(fresh_base(), ckpt)


if __name__ == "__main__":
    _trainer_main(sys.argv[1])
