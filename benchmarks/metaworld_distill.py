"""Closed-loop check of head distillation in MetaWorld: teacher (DDIM 10 of 100) vs few-step students.

1. Demonstrations from MetaWorld's scripted expert policies (goal-observable v3 tasks).
2. A small state-conditioned teacher with TinyVLA's head architecture (`ConditionalUnet1D`, the
   condition front-end fed a learned per-task token as its "hidden states" and the normalized
   39-D observation as its state), trained with the reference's loss and scheduler.
3. Students distilled by `quantize.distill.distill_head` on cached conditions from demo states:
   output matching at K = 4, 2, 1 and consistency distillation at K = 2, 1 (`--methods`).
4. Success rates over fixed-seed episodes (the same env seeds and the same initial noises for
   the teacher and every student), plus the head's latency per action chunk at batch 1.

Everything expensive is cached under benchmarks/.cache/metaworld/ (gitignored): demos, the
teacher, the students, the results. The table is written into benchmarks/RESULTS.md under
"## MetaWorld distillation". Fits in about an hour on a 2-core CPU.

    .venv/bin/python benchmarks/metaworld_distill.py [--episodes 50] [--methods consistency] [--ks 2,1] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.policy.config import HeadConfig  # noqa: E402
from edge.policy.head import ConditionalUnet1D  # noqa: E402
from edge.policy.sampler import leading_timesteps  # noqa: E402
from quantize.distill import distill_head  # noqa: E402
from quantize.distill.chain import sample_actions  # noqa: E402
from quantize.distill.objectives import rounds_for  # noqa: E402
from quantize.distill.teacher_training import ddpm_loss  # noqa: E402
from quantize.distill.trainer import learning_rate  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "metaworld"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## MetaWorld distillation"
TASKS = {
    "reach-v3": "SawyerReachV3Policy",
    "push-v3": "SawyerPushV3Policy",
    "pick-place-v3": "SawyerPickPlaceV3Policy",
    "drawer-open-v3": "SawyerDrawerOpenV3Policy",
    "button-press-v3": "SawyerButtonPressV3Policy",
}
OBS_DIM, ACTION_DIM, HORIZON, EXECUTE = 39, 4, 16, 8
TOKEN_DIM = 32
HEAD = HeadConfig(action_dim=ACTION_DIM, state_dim=OBS_DIM, chunk_size=HORIZON, down_dims=(16, 32, 64),
                  kernel_size=5, step_embed_dim=32, n_groups=8)
TEACHER = "teacher"
TEACHER_STEPS = 10  # DDIM steps of 100, the reference's setting
STUDENTS = {"output-matching": (4, 2, 1), "consistency": (2, 1)}  # method → the K it is distilled to
TARGET_POINTS = {2: 2, 1: 5}  # issue 19: K within this many points of the teacher's mean success
MAX_EPISODE_STEPS = 200
DEMO_SEEDS = range(0, 40)
EVAL_SEED_BASE = 10_000


def require_metaworld():
    try:
        import metaworld  # noqa: F401
        from metaworld import policies
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
    except ImportError as e:
        raise SystemExit(
            f"metaworld is not importable ({e}): install it into the venv with `.venv/bin/pip install metaworld` "
            "(it brings mujoco and gymnasium, not torch)"
        ) from e
    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE, policies


def make_env(task: str, seed: int):
    envs, _ = require_metaworld()
    return envs[f"{task}-goal-observable"](seed=seed)


# --- demonstrations --------------------------------------------------------------------------

def collect_demos() -> dict[str, np.ndarray]:
    """Expert episodes per task: observations, actions, task ids, episode boundaries."""
    _, policies = require_metaworld()
    obs_all, act_all, task_all, ends = [], [], [], []
    for task_id, (task, policy_name) in enumerate(TASKS.items()):
        expert = getattr(policies, policy_name)()
        successes = 0
        for seed in DEMO_SEEDS:
            env = make_env(task, seed)
            obs, _ = env.reset()
            for _ in range(MAX_EPISODE_STEPS):
                action = np.clip(expert.get_action(obs), -1, 1)
                obs_all.append(obs.astype(np.float32))
                act_all.append(action.astype(np.float32))
                task_all.append(task_id)
                obs, _, _, truncated, info = env.step(action)
                if info["success"] or truncated:
                    break
            successes += int(info["success"])
            ends.append(len(obs_all))
        print(f"  demos {task}: {successes}/{len(DEMO_SEEDS)} expert successes", flush=True)
    return {"obs": np.stack(obs_all), "actions": np.stack(act_all), "task": np.asarray(task_all), "ends": np.asarray(ends)}


def chunk_targets(demos: dict[str, np.ndarray]) -> np.ndarray:
    """For every step, the next HORIZON actions of its episode (the last action repeated past the end)."""
    actions, ends = demos["actions"], demos["ends"]
    starts = np.concatenate([[0], ends[:-1]])
    out = np.empty((len(actions), HORIZON, ACTION_DIM), np.float32)
    for s, e in zip(starts, ends):
        for i in range(s, e):
            idx = np.minimum(np.arange(i, i + HORIZON), e - 1)
            out[i] = actions[idx]
    return out


# --- the policy --------------------------------------------------------------------------------

class StatePolicy(nn.Module):
    """A per-task token (the "hidden states" of one token) + the head; normalization built in."""

    def __init__(self, stats: dict[str, np.ndarray]):
        super().__init__()
        self.tokens = nn.Embedding(len(TASKS), TOKEN_DIM)
        self.head = ConditionalUnet1D(TOKEN_DIM, HEAD)
        for k, v in stats.items():
            self.register_buffer(k, torch.as_tensor(v, dtype=torch.float32))

    def condition(self, obs: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        state = (obs - self.obs_mean) / self.obs_std
        return self.head.encode_condition(self.tokens(task)[:, None, :], state)

    def normalize_actions(self, a: torch.Tensor) -> torch.Tensor:
        return 2 * (a - self.act_min) / (self.act_max - self.act_min) - 1

    def denormalize_actions(self, a: torch.Tensor) -> torch.Tensor:
        return (a + 1) / 2 * (self.act_max - self.act_min) + self.act_min


def norm_stats(demos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    obs, act = demos["obs"], demos["actions"]
    return {
        "obs_mean": obs.mean(0), "obs_std": np.maximum(obs.std(0), 1e-2),
        "act_min": act.min(0) - 1e-4, "act_max": act.max(0) + 1e-4,  # TinyVLA's min–max with margin
    }


def train_teacher(demos: dict[str, np.ndarray], iterations: int, batch: int = 128, seed: int = 0) -> StatePolicy:
    torch.manual_seed(seed)
    policy = StatePolicy(norm_stats(demos))
    obs = torch.from_numpy(demos["obs"])
    task = torch.from_numpy(demos["task"]).long()
    targets = policy.normalize_actions(torch.from_numpy(chunk_targets(demos)))
    params = list(policy.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: learning_rate(1.0, step, iterations))
    g = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    for it in range(iterations):
        idx = torch.randint(0, len(obs), (batch,), generator=g)
        loss = ddpm_loss(policy.head, policy.condition(obs[idx], task[idx]), targets[idx], g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if (it + 1) % 500 == 0:
            print(f"  teacher it {it + 1}/{iterations} loss {loss.item():.4f} ({time.monotonic() - t0:.0f} s)", flush=True)
    return policy.eval()


# --- evaluation ---------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(policy: StatePolicy, head: ConditionalUnet1D, timesteps: list[int], task: str, episodes: int) -> float:
    """Success rate over `episodes` fixed seeds; all episodes step in lockstep so the head runs
    once per chunk for the whole batch. Episode e's initial noises come from its own seed."""
    task_id = list(TASKS).index(task)
    envs = [make_env(task, EVAL_SEED_BASE + e) for e in range(episodes)]
    obs = np.stack([env.reset()[0] for env in envs]).astype(np.float32)
    noise_gens = [torch.Generator().manual_seed(EVAL_SEED_BASE + e) for e in range(episodes)]
    done = np.zeros(episodes, bool)
    success = np.zeros(episodes, bool)
    step = 0
    while step < MAX_EPISODE_STEPS and not done.all():
        active = np.flatnonzero(~done)
        cond = policy.condition(torch.from_numpy(obs[active]), torch.full((len(active),), task_id, dtype=torch.long))
        noise = torch.stack([torch.randn((HORIZON, ACTION_DIM), generator=noise_gens[e]) for e in active])
        chunk = policy.denormalize_actions(sample_actions(head, timesteps, cond, noise)).numpy()
        for j, e in enumerate(active):
            for a in chunk[j, :EXECUTE]:
                o, _, _, truncated, info = envs[e].step(np.clip(a, -1, 1))
                obs[e] = o
                if info["success"]:
                    success[e] = done[e] = True
                    break
                if truncated or step + 1 >= MAX_EPISODE_STEPS:
                    done[e] = True
                    break
        step += EXECUTE
    return float(success.mean())


@torch.no_grad()
def head_latency_ms(policy: StatePolicy, head: ConditionalUnet1D, timesteps: list[int], repeats: int = 30) -> float:
    """Median time of one action chunk at batch 1 (condition precomputed, as at runtime)."""
    cond = policy.condition(torch.zeros(1, OBS_DIM), torch.zeros(1, dtype=torch.long))
    noise = torch.randn(1, HORIZON, ACTION_DIM)
    sample_actions(head, timesteps, cond, noise)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sample_actions(head, timesteps, cond, noise)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


# --- orchestration ------------------------------------------------------------------------------

TIMINGS = CACHE / "timings.json"


def record_time(stage: str, seconds: float) -> None:
    """Remember how long a cached stage took, so a rerun from the cache still reports the cost."""
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}
    timings[stage] = round(seconds, 1)
    TIMINGS.write_text(json.dumps(timings, indent=2))


def cached(path: Path, make, save, load):
    if path.is_file():
        return load(path)
    t = time.monotonic()
    value = make()
    save(value, path)
    record_time(path.name, time.monotonic() - t)
    return value


def column_name(method: str, k: int) -> str:
    """The key of a policy's results and cached student: its timesteps are part of it, so a change
    of a method's schedule never reuses a student or a result of the old one."""
    if method == TEACHER:
        return "teacher"
    return f"{method}-k{k}-at" + "-".join(map(str, rounds_for(method, k, TEACHER_STEPS)[-1].student_timesteps))


def distill_students(policy: StatePolicy, conditions: torch.Tensor, method: str, args) -> tuple[dict, dict]:
    """Each K of `method`, distilled or read from the cache: {K: (head, timesteps)}, {K: fidelity}."""
    heads, fidelity = {}, {}
    for k in (k for k in STUDENTS[method] if k in args.ks):
        path = CACHE / f"student-{column_name(method, k)}-{args.distill_iterations}-t{args.teacher_iterations}.pt"
        meta = path.with_suffix(".json")
        student = ConditionalUnet1D(TOKEN_DIM, HEAD)
        if path.is_file() and meta.is_file():
            student.load_state_dict(torch.load(path, weights_only=True))
            info = json.loads(meta.read_text())
        else:
            print(f"distill {method} K={k}", flush=True)
            result = distill_head(policy.head, conditions, k, method=method, iterations=args.distill_iterations,
                                  batch_size=64, learning_rate=1e-3, seed=0, progress=sys.stderr.isatty(),
                                  fidelity_noises=4, fidelity_samples=16, fidelity_conditions=8)
            student.load_state_dict(result.head.state_dict())
            info = result.to_manifest()
            torch.save(student.state_dict(), path)
            meta.write_text(json.dumps(info, indent=2))
            record_time(path.name, info["elapsed_s"])
            print(f"  {method} K={k}: paired RMSE {info['fidelity']['paired']['rmse']:.4f} "
                  f"(warm start {info['fidelity']['baseline_paired']['rmse']:.4f}), {info['elapsed_s']:.0f} s", flush=True)
        heads[k] = (student.eval(), info["timesteps"])
        fidelity[k] = info["fidelity"]
    return heads, fidelity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per task and policy")
    parser.add_argument("--teacher-iterations", type=int, default=4000)
    parser.add_argument("--distill-iterations", type=int, default=400)
    parser.add_argument("--methods", default=",".join(STUDENTS),
                        help=f"comma-separated distillation methods to compare (of {', '.join(STUDENTS)})")
    parser.add_argument("--ks", default=",".join(str(k) for k in sorted({k for ks in STUDENTS.values() for k in ks})),
                        help="comma-separated student step counts to distil (default: every K of each method)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to MuJoCo and others)")
    parser.add_argument("--fresh", action="store_true", help="ignore the cache")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone (smoke runs)")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in STUDENTS]
    if unknown or not methods:
        parser.error(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(STUDENTS)}")
    try:
        args.ks = {int(k) for k in args.ks.split(",") if k}
    except ValueError:
        parser.error(f"--ks: expected comma-separated integers, got {args.ks!r}")
    torch.set_num_threads(args.threads)
    require_metaworld()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for p in CACHE.glob("*"):
            if p.is_file() and p.suffix in (".npz", ".pt", ".json"):
                p.unlink()

    print("demonstrations", flush=True)
    demos = cached(CACHE / "demos.npz", collect_demos, lambda v, p: np.savez(p, **v), lambda p: dict(np.load(p)))
    print(f"  {len(demos['obs'])} steps in {len(demos['ends'])} episodes", flush=True)

    print("teacher", flush=True)
    teacher_file = CACHE / f"teacher-{args.teacher_iterations}.pt"
    if teacher_file.is_file():
        policy = StatePolicy(norm_stats(demos))
        policy.load_state_dict(torch.load(teacher_file, weights_only=True))
        policy.eval()
    else:
        t = time.monotonic()
        policy = train_teacher(demos, args.teacher_iterations)
        torch.save(policy.state_dict(), teacher_file)
        record_time(teacher_file.name, time.monotonic() - t)
    policy.requires_grad_(False)

    # Cached head conditions from demo states: the calibration set (2,000 of them, all tasks).
    pick = np.random.default_rng(0).choice(len(demos["obs"]), size=min(2000, len(demos["obs"])), replace=False)
    with torch.no_grad():
        conditions = policy.condition(torch.from_numpy(demos["obs"][pick]), torch.from_numpy(demos["task"][pick]).long())

    heads = {(TEACHER, TEACHER_STEPS): (policy.head, leading_timesteps(TEACHER_STEPS))}
    fidelity = {}
    for method in methods:
        method_heads, method_fidelity = distill_students(policy, conditions, method, args)
        heads.update({(method, k): v for k, v in method_heads.items()})
        fidelity.update({(method, k): v for k, v in method_fidelity.items()})

    results_file = CACHE / f"results-{args.episodes}-{args.distill_iterations}-t{args.teacher_iterations}.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for (method, k), (head, timesteps) in heads.items():
        for task in TASKS:
            key = f"{column_name(method, k)}/{task}"
            if key in results:
                continue
            t = time.monotonic()
            results[key] = evaluate(policy, head, timesteps, task, args.episodes)
            record_time(f"{results_file.name}:{key}", time.monotonic() - t)
            print(f"  eval {column_name(method, k)} {task}: {results[key]:.2f} ({time.monotonic() - t:.0f} s)", flush=True)
            results_file.write_text(json.dumps(results, indent=2))
    latency = {column: head_latency_ms(policy, head, ts) for column, (head, ts) in heads.items()}
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.is_file() else {}
    used = [teacher_file.name, "demos.npz", results_file.name,
            *(f"student-{column_name(m, k)}-{args.distill_iterations}-t{args.teacher_iterations}.pt" for m, k in heads if m != TEACHER)]
    compute_s = sum(v for name, v in timings.items() if any(name == u or name.startswith(u + ":") for u in used))
    table = render(results, latency, fidelity, heads, args, compute_s)
    print(table)
    if not args.no_write:
        write_section(table)


def render(results, latency, fidelity, heads, args, elapsed_s: float) -> str:
    params = sum(p.numel() for p in heads[(TEACHER, TEACHER_STEPS)][0].parameters())
    cols = list(heads)
    students = cols[1:]
    rate = {c: {task: 100 * results[f"{column_name(*c)}/{task}"] for task in TASKS} for c in cols}
    means = {c: float(np.mean(list(rate[c].values()))) for c in cols}
    teacher = (TEACHER, TEACHER_STEPS)
    header = "| task | " + " | ".join("teacher (10 steps)" if c == teacher else f"{c[0]} K = {c[1]}" for c in cols) + " |"
    lines = [header, "|" + "---|" * (len(cols) + 1)]
    for task in TASKS:
        lines.append(f"| {task} | " + " | ".join(f"{rate[c][task]:.0f}%" for c in cols) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{means[c]:.1f}%**" for c in cols) + " |")
    lines.append("| Δ vs teacher (points) | – | " + " | ".join(f"{means[c] - means[teacher]:+.1f}" for c in students) + " |")
    lines.append("| head latency / chunk (batch 1, ms) | " + " | ".join(f"{latency[c]:.1f}" for c in cols) + " |")
    lines.append("| paired RMSE vs teacher (held out) | – | " + " | ".join(f"{fidelity[c]['paired']['rmse']:.4f}" for c in students) + " |")
    lines.append("| student timesteps | " + " | ".join(str(heads[c][1]) for c in cols) + " |")
    judged = [c for c in students if c[1] in TARGET_POINTS]
    verdict = {c: means[c] >= means[teacher] - TARGET_POINTS[c[1]] for c in judged}
    targets = "Targets (issue 19): K = 2 within 2 points of the teacher's mean, K = 1 within 5. " + "; ".join(
        f"{c[0]} K = {c[1]}: {'met' if verdict[c] else 'missed'}" for c in judged) + "."
    notes = (
        f"{args.episodes} episodes per task and policy (env seeds {EVAL_SEED_BASE}…, the same seeds and initial noises for every "
        f"policy), at most {MAX_EPISODE_STEPS} steps, chunk {HORIZON} executing {EXECUTE}. Teacher: one state-conditioned "
        f"`ConditionalUnet1D` ({params / 1e6:.2f}M parameters, down_dims {list(HEAD.down_dims)}) for all five tasks, trained "
        f"{args.teacher_iterations} iterations on {len(DEMO_SEEDS)} expert demos per task, DDIM 10 of 100. Students: "
        f"{', '.join(f'`{m}`' for m in dict.fromkeys(c[0] for c in students))}, {args.distill_iterations} iterations each "
        f"(batch 64, learning rate 1e-3), warm-started from the teacher, sampled with the same DDIM sampler at their "
        f"timesteps. CPU, {args.threads} torch thread(s), on a machine shared with other work; all stages together took "
        f"{elapsed_s / 60:.0f} min (demos, teacher, students, evaluation; reruns reuse benchmarks/.cache/). "
        "Produced by `benchmarks/metaworld_distill.py`."
    )
    missed = [c for c in judged if not verdict[c]]
    why = ""
    if missed:
        worst = {c: [t for t in TASKS if rate[c][t] < rate[teacher][t] - 10] for c in missed}
        why = "Missed: " + "; ".join(
            f"{c[0]} K = {c[1]} loses more than 10 points on {', '.join(worst[c]) or 'no single task'} (held-out paired "
            f"RMSE {fidelity[c]['paired']['rmse']:.3f} vs warm start {fidelity[c]['baseline_paired']['rmse']:.3f})"
            for c in missed
        ) + (f". With this CPU budget ({params / 1e6:.2f}M-parameter head, {args.distill_iterations} distillation "
             "iterations) the student does not reproduce the teacher closely enough on those tasks; docs/distillation.md "
             "discusses the cause and the next steps.")
    return "\n".join([SECTION, "", *lines, "", targets, *(["", why] if why else []), "", notes, ""])


def write_section(section: str) -> None:
    """Replace (or append) only this benchmark's section of RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[nxt:] if nxt >= 0 else "")  # keeps the blank line before the next
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
