"""`tinyvla-edge quantize`: training output → verified bundle with a fidelity report.

Stages (each shown by quantize.progress): load the policy and calibration frames → export the
backbone components (ONNX, torch weights) → calibration (fp32 activations on real frames) and
int8 quantization where asked → distill the head to K steps → measure fidelity against the fp32
policy and apply the profile's fidelity gate → write. What libraries print goes to the log
beside the output. Everything is written into a
temporary sibling directory and renamed into place at the end: an interrupted or failed run
leaves no bundle behind, and an existing bundle is only replaced with --force (a directory that
is not a bundle never is). Temporary directories carry the writer's pid: SIGTERM removes them on
the way out, and the next run removes those a SIGKILL left behind. Bundles are written 0755/0644,
so a service user can read a copied one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from edge.bundle import BACKBONE_WEIGHTS, HEAD_WEIGHTS, TOKENIZER, load_predictor, new_manifest_fields, verify, write_manifest
from edge.config import ComponentSpec, Profile
from edge.errors import EdgeError
from edge.hub import resolve_path
from edge.policy.components import LanguageComponent, VisionComponent, split_prompt
from edge.policy.native import policy_metadata
from edge.policy.policy import Policy
from edge.policy.prompt import IMAGE_TOKEN_INDEX
from edge.policy.sampler import DDIMSampler
from quantize.calibration import Observation, read_calibration_dir, split_holdout
from quantize.fidelity import FidelityGate
from quantize.preflight import check_quantize_inputs, check_replaceable
from quantize.progress import QUANTIZE_STAGES, Stage, StageProgress, captured_output, log_path_for
from quantize.report import write_report

# Frames played from a --calibration-recording unless --calibration-frames says otherwise, and
# stand-in observations for the fidelity report when no calibration data is given.
RECORDING_FRAMES = 16
SYNTHETIC_FIDELITY_OBSERVATIONS = 4


def load_source(path: Path, base: Path | None) -> Policy:
    """A training output (root or checkpoint-N) or a native policy directory (local or a Hub id)."""
    path = resolve_path(path)
    if (path / "policy.json").is_file():
        from edge.policy.native import load_policy

        return load_policy(path)
    from edge.policy.checkpoint import load_training_output

    return load_training_output(path, base=base)


def camera_names(profile: Profile, policy: Policy) -> list[str]:
    names = [c.name for c in profile.cameras]
    n = policy.config.num_cameras
    if names and len(names) != n:
        raise EdgeError(f"profile {profile.name} lists {len(names)} cameras, the policy was trained with {n}")
    return names or list(policy.config.camera_names) or [f"cam{i}" for i in range(n)]


def synthetic_observations(policy: Policy, count: int) -> list[Observation]:
    """Deterministic stand-in frames (the distillation stage's), used only to *report* fidelity
    when no calibration is given (never to calibrate int8); the report says so."""
    from quantize.distill.conditions import synthetic_observations as stand_ins

    return [Observation(images, state, instruction) for images, state, instruction in stand_ins(policy, count)]


def _export_component(name: str, module, args, spec: ComponentSpec, out: Path) -> dict:
    """Write one backbone component for its engine (ONNX in fp32, or torch weights); returns its
    manifest entry. An int8 ONNX component is quantized afterwards by `_quantize_component`."""
    from edge.engines.table import ONNX, profile_engine, profile_file_kind
    from quantize.onnx_export import EXPORT_RECIPE, check_torch_export, export_onnx

    inputs = {"vision": ["pixel_values"], "language": ["prefix_ids", "image_tokens", "suffix_ids"]}[name]
    shapes = {n: list(a.shape) for n, a in zip(inputs, args)}
    check_torch_export(module, args)  # what torch-tensorrt's dynamo path consumes on device
    engine = profile_engine(spec.engine, spec.precision)  # the name that says what runs it
    if profile_file_kind(spec.engine, spec.precision) == ONNX:
        fp32 = out / f"{name}.fp32.onnx"
        export_onnx(module, args, fp32, inputs, ["output"])
        return {"engine": engine, "precision": "fp32", "file": fp32.name, "input_shapes": shapes,
                "export": EXPORT_RECIPE}
    return {"engine": engine, "precision": spec.precision, "file": BACKBONE_WEIGHTS, "input_shapes": shapes}


def _wants_qdq(spec: ComponentSpec, entry: dict) -> bool:
    return spec.precision == "int8" and entry["file"].endswith(".onnx")


def _quantize_component(name: str, entry: dict, out: Path, feeds: list[dict], method: str) -> dict:
    """The fp32 ONNX component → a QDQ int8 one calibrated on `feeds`; returns its manifest entry."""
    from quantize.int8 import quantize_static_qdq

    fp32, qdq = out / entry["file"], out / f"{name}.int8.onnx"
    quant = quantize_static_qdq(fp32, qdq, feeds, method)
    fp32.unlink()
    _drop_external(fp32)
    # tensorrt int8 runs this same QDQ graph through ORT's TensorRT execution provider.
    return {**entry, "precision": "int8", "file": qdq.name, "quantization": quant}


def _drop_external(path: Path) -> None:
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()


def _feeds(policy: Policy, observations: list[Observation], budget: int, stage: Stage):
    """Calibration feeds for the vision and language components (real frames, fp32 activations)."""
    net = policy.network
    vision_feeds, language_feeds = [], []
    with torch.inference_mode():
        for obs in observations:
            p = policy.prepare(obs.images, obs.state, obs.instruction)
            pixels = p.pixel_values[0]
            tokens = VisionComponent(net)(pixels)
            prefix, suffix, _ = split_prompt(p.input_ids[0].tolist(), IMAGE_TOKEN_INDEX, budget, policy.config.pad_token_id)
            vision_feeds.append({"pixel_values": pixels.numpy()})
            language_feeds.append({"prefix_ids": np.array([prefix]), "image_tokens": tokens.numpy(),
                                   "suffix_ids": np.array([suffix])})
            stage.advance()
    return vision_feeds, language_feeds


def _head_entry(policy: Policy, steps: int, out: Path, head_state: dict, distill: dict | None, sampler: DDIMSampler,
                plan: dict | None = None) -> dict:
    """Write the head and return its manifest entry. `plan` (`_head_plan`) applies the profile's
    `model.head` engine and precision (an int8 network, the fidelity figure); None writes the fp32
    torch head, the stand-in that distillation starts from."""
    from edge.policy.head import ConditionalUnet1D
    from quantize.head_engine import head_engine_fields

    save_file({f"embed_out.{k}": v.contiguous() for k, v in head_state.items()}, str(out / HEAD_WEIGHTS))
    entry = {"file": HEAD_WEIGHTS, "steps": steps, "teacher_steps": policy.config.inference_steps,
             "distilled": distill is not None, "method": distill.get("method") if distill else None,
             "sampler": sampler.describe()}
    if plan is None:
        return entry
    head = ConditionalUnet1D(policy.config.language.hidden_size, policy.config.head)
    head.load_state_dict(head_state)
    return entry | head_engine_fields(policy, head.eval(), sampler, out=out, **plan)


def _head_plan(prof: Profile, calibrate_on: list[Observation], held_out: list[Observation], method: str) -> dict:
    """What `_head_entry` needs to apply the profile's head engine (checked here: one line naming
    the head engines when the table has no row for it)."""
    from quantize.head_engine import profile_head

    profile_head(prof.model.head)
    return {"spec": prof.model.head, "calibrate_on": calibrate_on, "held_out": held_out, "method": method}


class QuantizeTerminated(EdgeError):
    """SIGTERM during quantize: temporary directories were removed, no bundle was written."""

    exit_code = 128 + signal.SIGTERM


@contextlib.contextmanager
def _sigterm_as_exception():
    """SIGTERM raises (in the main thread), so every `finally` and context manager cleans up on the
    way out; Python's default would end the process with the temporary directories left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(_signum, _frame):
        raise QuantizeTerminated("SIGTERM received: quantize stopped, no bundle written")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@_sigterm_as_exception()
def quantize_training_output(
    checkpoint: Path,
    profile: str,
    output: Path,
    base: Path | None = None,
    calibration: Path | None = None,
    calibration_recording: Path | None = None,
    precision: str | None = None,
    head_steps: int | None = None,
    max_action_rmse: float | None = None,
    calibration_method: str = "percentile",
    distill_iterations: int | None = None,
    calibration_frames: int | None = None,
    accept_fidelity: bool = False,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Build a bundle from a training output under a deployment profile; returns the summary.

    The bundle is refused when its end-to-end action RMSE exceeds the gate (`max_action_rmse`,
    else the profile's `model.fidelity_max_rmse`) unless `accept_fidelity`. What libraries print
    goes to the log beside OUTPUT (`OUTPUT.quantize.log`); `progress` shows the stages on stderr."""
    started = time.perf_counter()
    output = Path(output)
    prof, specs = check_quantize_inputs(checkpoint, profile, output, base, calibration, calibration_recording,
                                        precision, force)
    gate = FidelityGate.for_profile(prof, max_action_rmse, accept_fidelity)
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = log_path_for(output)
    with captured_output(log_path) as (console, log):
        stages = StageProgress("quantize", QUANTIZE_STAGES, console if progress else None, log)
        try:
            summary = _quantize(checkpoint, prof, specs, output, base, calibration, calibration_recording, head_steps,
                                calibration_method, distill_iterations, calibration_frames, gate, force, stages)
        except BaseException as e:
            log.write(f"error: {str(e) or type(e).__name__}\n")
            raise
        finally:
            stages.close()
    summary["output"] = str(output)
    summary["log"] = str(log_path)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _quantize(checkpoint, prof, specs, output, base, calibration, calibration_recording, head_steps, method,
              distill_iterations, calibration_frames, gate, force, stages: StageProgress) -> dict:
    with stages.stage("load") as stage:
        policy = load_source(checkpoint, base)
        steps = head_steps or prof.model.head_steps
        if not 1 <= steps <= policy.config.inference_steps:
            raise EdgeError(f"--head-steps must be between 1 and the teacher's {policy.config.inference_steps}, got {steps}")
        names = camera_names(prof, policy)
        resolution = {c.name: (c.height, c.width) for c in prof.cameras}
        wants_int8 = any(s.precision == "int8" for s in [*specs.values(), prof.model.head])
        calib = _calibration(policy, names, resolution, calibration, calibration_recording, calibration_frames)
        if wants_int8 and calib is None:
            raise EdgeError("int8 needs calibration frames: pass --calibration DIR or --calibration-recording FILE "
                            "(tinyvla-edge capture writes them); int8 is never calibrated on noise")
        if calib is not None:
            calibrate_on, held_out = split_holdout(calib.observations)
            fidelity_source = calib.source
        else:
            calibrate_on, held_out = [], synthetic_observations(policy, SYNTHETIC_FIDELITY_OBSERVATIONS)
            fidelity_source = "synthetic frames (no calibration data given)"
        budget = prof.model.max_prompt_tokens
        for obs in calibrate_on + held_out:
            if not _fits(policy, obs.instruction, budget):
                raise EdgeError(f"instruction '{obs.instruction[:40]}' exceeds the profile's prompt budget of {budget} tokens")
        stage.note(f"{len(calibrate_on)} calibration + {len(held_out)} held-out observations from {fidelity_source}")

    with owned_tmpdir(output.parent, f".{output.name}.partial-") as tmp:
        summary = _build(policy, prof, specs, steps, names, resolution, calibrate_on, held_out, budget, tmp,
                         method, distill_iterations, stages, checkpoint, calib, fidelity_source, gate)
        with stages.stage("write") as stage:
            make_readable(tmp)
            verify(tmp)
            check_replaceable(output, force)  # again: the run took minutes, something may have appeared
            _move_into_place(tmp, output)
            stage.note(str(output))
    return summary


def _fits(policy: Policy, instruction: str, budget: int) -> bool:
    from quantize.fidelity import prompt_fits

    return prompt_fits(policy, instruction, budget)


def _calibration(policy, names, resolution, directory, recording, frames: int | None):
    default_state = np.asarray((policy.stats.example_qpos or [policy.stats.qpos_mean])[0], np.float32)
    if recording is not None:
        with owned_tmpdir(Path(tempfile.gettempdir()), CALIBRATION_TMP_PREFIX) as played:
            _frames_from_recording(recording, names, played, frames or RECORDING_FRAMES)
            calib = read_calibration_dir(played, names, default_state, resolution)  # read into memory
        return dataclasses.replace(calib, source=f"recording {recording}")
    if directory is None:
        return None
    calib = read_calibration_dir(directory, names, default_state, resolution)
    return dataclasses.replace(calib, observations=calib.observations[:frames]) if frames else calib


def _frames_from_recording(recording: Path, names: list[str], out: Path, frames: int) -> None:
    """Play a RealSense recording through the camera driver into a calibration directory."""
    from drivers.camera.capture import capture

    capture({name: f"recording:{recording}" for name in names}, frames, out)


# ----------------------------------------------------------------------------- files and exits

CALIBRATION_TMP_PREFIX = "tinyvla-calib-"
BUNDLE_DIR_MODE, BUNDLE_FILE_MODE = 0o755, 0o644


@contextlib.contextmanager
def owned_tmpdir(parent: Path, prefix: str):
    """A temporary directory `parent/PREFIX<pid>-xxxx`, removed on every way out. Leftovers of the
    same prefix whose process is gone (SIGKILL, power loss) are removed first."""
    remove_orphaned_tmpdirs(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphaned_tmpdirs(parent: Path, prefix: str) -> list[Path]:
    """Remove `PREFIX<pid>-*` directories in `parent` whose process no longer runs; returns them."""
    removed = []
    for path in parent.glob(f"{prefix}*-*") if parent.is_dir() else []:
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and path.is_dir() and not path.is_symlink() and not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def make_readable(bundle: Path) -> None:
    """Directories 0755, files 0644: mkdtemp makes 0700 and a umask of 077 makes 0600, and the
    service user must read a bundle another user wrote or copied."""
    bundle.chmod(BUNDLE_DIR_MODE)
    for path in bundle.rglob("*"):
        if not path.is_symlink():
            path.chmod(BUNDLE_DIR_MODE if path.is_dir() else BUNDLE_FILE_MODE)


def _build(policy, prof, specs, steps, names, resolution, calibrate_on, held_out, budget, tmp, method,
           distill_iterations, stages, checkpoint, calib, fidelity_source, gate) -> dict:
    head_plan = _head_plan(prof, calibrate_on, held_out, method)  # refuses a head engine the table lacks, first
    net = policy.network
    vision, language = VisionComponent(net).eval(), LanguageComponent(net).eval()
    prefix, suffix, _ = split_prompt(policy.tokenizer.encode_instruction("x"), IMAGE_TOKEN_INDEX, budget, policy.config.pad_token_id)
    cfg = policy.config
    px = torch.zeros(cfg.num_cameras, 3, cfg.vision.image_size, cfg.vision.image_size)
    with torch.inference_mode():
        img = vision(px)
    args = {"vision": (px,), "language": (torch.tensor([prefix]), img, torch.tensor([suffix]))}

    components = {}
    with stages.stage("export", total=2) as stage:
        for name, module in (("vision", vision), ("language", language)):
            components[name] = _export_component(name, module, args[name], specs[name], tmp)
            stage.advance()
        stage.note(", ".join(dict.fromkeys(c["file"] for c in components.values())))
        if any(c["file"] == BACKBONE_WEIGHTS for c in components.values()):
            save_file({k: v.contiguous() for k, v in net.state_dict().items() if k.startswith("gpt_neox.")}, str(tmp / BACKBONE_WEIGHTS))
    to_quantize = [name for name, entry in components.items() if _wants_qdq(specs[name], entry)]
    if to_quantize:
        with stages.stage("calibration", total=len(calibrate_on)) as stage:
            feeds = dict(zip(("vision", "language"), _feeds(policy, calibrate_on, budget, stage)))
        with stages.stage("quantization", total=len(to_quantize)) as stage:
            for name in to_quantize:
                components[name] = _quantize_component(name, components[name], tmp, feeds.pop(name), method)
                stage.advance()
            stage.note(f"{method} ranges: " + ", ".join(components[n]["file"] for n in to_quantize))
    else:
        stages.skip("calibration", "no int8 component")
        stages.skip("quantization", "no int8 component")
    shutil.copyfile(policy.tokenizer.path, tmp / TOKENIZER)
    teacher = policy.sampler()
    head_state = {k: v for k, v in net.embed_out.state_dict().items()}
    manifest = {
        **new_manifest_fields(prof.name),
        "source": policy.source,
        "policy": policy_metadata(policy),
        "camera_names": names,
        "camera_resolution": {k: list(v) for k, v in resolution.items()} or None,
        "prompt": {"prefix_ids": prefix, "max_prompt_tokens": budget, "pad_token_id": cfg.pad_token_id,
                   "template": "pythia conv + ' <|endoftext|>'"},
        "components": components,
        "head": _head_entry(policy, teacher.steps, tmp, head_state, None, teacher,
                            head_plan if steps == teacher.steps else None),
    }
    write_manifest(tmp, manifest)
    distill_info = None
    if steps != teacher.steps:
        with stages.stage("distillation") as stage:
            distill_info = _distill_into(policy, tmp, manifest, steps, calibrate_on or held_out, distill_iterations, stage,
                                         head_plan)
    else:
        stages.skip("distillation", f"the head keeps the teacher's {teacher.steps} steps")
    from quantize.fidelity import measure_fidelity

    with stages.stage("fidelity", total=len(held_out)) as stage:
        predictor = load_predictor(tmp, require_engines=False)
        fidelity = measure_fidelity(policy, predictor, held_out, progress=stage)
        fidelity["held_out_from"] = fidelity_source
        if calib is not None:
            fidelity["states_from"], fidelity["instructions_from"] = calib.states_from, calib.instructions_from
        if distill_info:
            fidelity["distillation"] = distill_info
        fidelity["gate"] = gate.judge(fidelity)  # raises when refused
        stage.note(f"end-to-end RMSE {fidelity['action_rmse']:.4f} (gate {gate.max_action_rmse}: "
                   f"{fidelity['gate']['verdict']})")
    manifest["fidelity"] = fidelity
    write_report(tmp, manifest)
    write_manifest(tmp, manifest)
    return {"profile": prof.name, "components": components, "head": manifest["head"], "fidelity": fidelity,
            "camera_names": names}


def _distill_into(policy, tmp, manifest, steps, observations, iterations, stage: Stage, head_plan=None) -> dict:
    """Distill the head to `steps` on conditions from the bundle's (quantized) backbone."""
    try:
        from quantize.distill import distill_head
    except ImportError as e:
        raise EdgeError(f"head distillation is not available in this install: {e}") from e
    predictor = load_predictor(tmp, require_engines=False)
    stage.note(f"conditions of {len(observations)} observations")
    with torch.inference_mode():
        conditions = torch.cat([predictor.condition(o.images, o.state, o.instruction) for o in observations])
    kwargs = {"iterations": iterations} if iterations else {}
    result = distill_head(policy, conditions, steps=steps, teacher_steps=policy.config.inference_steps,
                          progress=stage, **kwargs)
    info = result.to_manifest()
    sampler = DDIMSampler(result.timesteps, policy.config.train_timesteps)
    manifest["head"] = _head_entry(policy, steps, tmp, result.head.state_dict(), info, sampler, head_plan)
    write_manifest(tmp, manifest)
    stage.note(f"{result.method}, {policy.config.inference_steps} → {steps} steps")
    return info


def _move_into_place(tmp: Path, output: Path) -> None:
    """Rename the finished bundle into place; an existing one is swapped out only at the end."""
    if output.exists():
        old = output.with_name(f".{output.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        output.rename(old)
        tmp.rename(output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(output)
