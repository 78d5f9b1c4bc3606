"""LeRobot 0.4.4's diffusion-policy head, timed per action chunk: the worker half of
`benchmarks/head_latency.py --lerobot-python PATH`. It runs inside the LeRobot venv built by
benchmarks/lerobot_venv.sh and imports nothing from this repository.

The model is LeRobot's own `DiffusionModel` from a state-only `DiffusionConfig` at the TinyVLA-S
head's dimensions: action dim 10, horizon 16, down_dims (256, 512, 1024), kernel 5, 8 groups, step
embedding 256, and a 512-wide global condition (our head's condition after `encode_condition`):
LeRobot's global_cond_dim is (robot state + environment state) * n_obs_steps = (128 + 128) * 2.
No image features, so no torchvision backbone is built. Random weights (seed 0): latency-true.

Protocol, one JSON object per line. stdin: {"k": 2, "repeats": 5, "threads": 2} with optional
"scheduler" ("DDIM", the default, or "DDPM") and "warmup" (default 2). stdout: {"median_ms": ...,
"times_ms": [...], "params": ..., ...} timing `conditional_sample(batch_size=1, global_cond=...)`
with K inference steps, or {"error": "..."}. Nothing else is written to stdout. With "cond"
([1, 512]) and "noise" ([1, 16, 10]) as nested lists, the worker samples from those instead of its
own fixed ones and also returns the last "chunk" (benchmarks/policy_latency.py).

    echo '{"k": 2, "repeats": 5, "threads": 2}' | .venv-lerobot/bin/python benchmarks/lerobot_head_worker.py
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time

ACTION_DIM, HORIZON, N_OBS_STEPS, STATE_DIM, ENV_STATE_DIM = 10, 16, 2, 128, 128
GLOBAL_COND_DIM = (STATE_DIM + ENV_STATE_DIM) * N_OBS_STEPS  # 512: our head's condition width

with contextlib.redirect_stdout(sys.stderr):  # import-time chatter must not reach the protocol
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionModel


def make_config(scheduler: str) -> DiffusionConfig:
    """A state-only DiffusionConfig at the TinyVLA-S head's dimensions (K is set per request)."""
    config = DiffusionConfig(
        n_obs_steps=N_OBS_STEPS, horizon=HORIZON, n_action_steps=8, device="cpu",
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,)),
                        "observation.environment_state": PolicyFeature(FeatureType.ENV, (ENV_STATE_DIM,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))},
        down_dims=(256, 512, 1024), kernel_size=5, n_groups=8, diffusion_step_embed_dim=256,
        noise_scheduler_type=scheduler, num_train_timesteps=100)
    config.validate_features()
    return config


class Heads:
    """One DiffusionModel per scheduler type, built lazily; all share the first one's UNet."""

    def __init__(self):
        self.models: dict[str, DiffusionModel] = {}
        generator = torch.Generator().manual_seed(1)
        self.global_cond = torch.randn(1, GLOBAL_COND_DIM, generator=generator)
        self.noise = torch.randn(1, HORIZON, ACTION_DIM, generator=generator)

    def get(self, scheduler: str) -> DiffusionModel:
        if scheduler not in self.models:
            torch.manual_seed(0)
            model = DiffusionModel(make_config(scheduler)).eval()
            if self.models:
                model.unet = next(iter(self.models.values())).unet
            self.models[scheduler] = model
        return self.models[scheduler]


def time_chunks(model: DiffusionModel, global_cond: torch.Tensor, noise: torch.Tensor, repeats: int,
                warmup: int) -> tuple[list[float], torch.Tensor]:
    """Wall times (ms) of `repeats` chunks after `warmup` untimed ones, and the last chunk."""
    def chunk():
        return model.conditional_sample(batch_size=1, global_cond=global_cond, noise=noise)

    with torch.inference_mode():
        last = None
        for _ in range(warmup):
            last = chunk()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            last = chunk()
            times.append((time.perf_counter() - t) * 1e3)
    return times, last


def handle(request: dict, heads: Heads) -> dict:
    torch.set_num_threads(int(request.get("threads", torch.get_num_threads())))
    scheduler, k = request.get("scheduler", "DDIM"), int(request["k"])
    model = heads.get(scheduler)
    model.num_inference_steps = k  # what conditional_sample passes to set_timesteps
    given = "cond" in request  # a whole-policy benchmark passes its own condition and noise
    cond = torch.tensor(request["cond"], dtype=torch.float32) if given else heads.global_cond
    noise = torch.tensor(request["noise"], dtype=torch.float32) if given else heads.noise
    times, chunk = time_chunks(model, cond, noise, int(request.get("repeats", 5)), int(request.get("warmup", 2)))
    params = sum(p.numel() for p in model.parameters())
    reply = {"median_ms": statistics.median(times), "times_ms": times, "params": params, "k": k,
             "scheduler": scheduler, "chunk_shape": list(chunk.shape), "global_cond_dim": GLOBAL_COND_DIM,
             "threads": torch.get_num_threads(), "lerobot": _version()}
    return reply | ({"chunk": chunk.tolist()} if given else {})


def _version() -> str:
    from importlib.metadata import version

    return version("lerobot")


def main() -> None:
    heads = Heads()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = handle(json.loads(line), heads)
        except Exception as exc:  # reported to the parent, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
