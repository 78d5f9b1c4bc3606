"""Two CPU processes (torch.multiprocessing + gloo), as torchrun would run them: ranks that hold
different calibration data are refused; ranks that agree end with identical parameters, and
rank 0 writes a checkpoint in the same format as a single-process run."""

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from edge.errors import EdgeError
from edge.policy.head import ConditionalUnet1D
from quantize.distill import distill_head
from quantize.distill.state import STATE_FILE, load_state
from tests.distill.synthetic import COND_DIM, SMALL_HEAD

RUN = dict(iterations=6, batch_size=8, learning_rate=3e-3, progress=False, checkpoint_every_steps=3,
           fidelity_noises=2, fidelity_samples=8, fidelity_conditions=2)


def _head() -> ConditionalUnet1D:
    torch.manual_seed(0)
    return ConditionalUnet1D(COND_DIM, SMALL_HEAD)


def _conditions(offset: float = 0.0) -> torch.Tensor:
    return torch.randn(12, COND_DIM, generator=torch.Generator().manual_seed(0)) + offset


def _worker(rank: int, world: int, out: str) -> None:
    out_dir = Path(out)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out_dir / 'rendezvous'}", rank=rank, world_size=world)
    try:
        try:
            distill_head(_head(), _conditions(offset=float(rank)), 2, **RUN)
        except EdgeError as e:
            (out_dir / f"rank{rank}.err").write_text(str(e))
        result = distill_head(_head(), _conditions(), 2, checkpoint_dir=out_dir / "ddp", **RUN)
        torch.save(result.head.state_dict(), out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_stay_identical_and_write_the_same_checkpoint_format(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)

    for rank in (0, 1):
        assert "ranks disagree on the calibration conditions" in (tmp_path / f"rank{rank}.err").read_text()
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(torch.equal(a[k], v) for k, v in _head().state_dict().items() if "down_modules" in k)  # it trained

    single = distill_head(_head(), _conditions(), 2, checkpoint_dir=tmp_path / "single", **RUN)
    ddp_state, single_state = load_state(tmp_path / "ddp"), load_state(tmp_path / "single")
    assert ddp_state.keys() == single_state.keys()
    assert ddp_state["student"].keys() == single_state["student"].keys()
    assert ddp_state["settings"]["world_size"] == 2 and single_state["settings"]["world_size"] == 1
    assert (ddp_state["round"], ddp_state["step"]) == (single_state["round"], single_state["step"]) == (1, 0)
    assert all(torch.equal(ddp_state["student"][k], a[k]) for k in a)  # rank 0 wrote what the ranks hold
    assert not (tmp_path / "ddp" / (STATE_FILE + ".tmp")).exists()
    assert single.report.world_size == 1 and os.environ.get("WORLD_SIZE") is None
