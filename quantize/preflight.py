"""What `quantize` checks before it imports torch: the paths it reads, the profile and precision,
the calibration frames' camera folders, and the output it would replace.

The CLI runs these before the heavy imports, so a typo costs a second, not the 10 s of loading
torch and transformers; `quantize_training_output` runs them again for Python callers.
"""

from __future__ import annotations

from pathlib import Path

from edge.config import ComponentSpec, Profile, load_profile
from edge.errors import EdgeError, validation_reason
from edge.hub import check_source
from quantize.calibration import check_camera_folders


def check_quantize_inputs(
    checkpoint: Path, profile: str | Path, output: Path, base: Path | None = None, calibration: Path | None = None,
    calibration_recording: Path | None = None, precision: str | None = None, force: bool = False,
) -> tuple[Profile, dict[str, ComponentSpec]]:
    """Refuse what can be refused without loading the model; returns the profile and the
    vision/language component specs."""
    check_source(checkpoint, "checkpoint")
    if base is not None:
        check_source(base, "--base")
    if calibration is not None and calibration_recording is not None:
        raise EdgeError("pass either --calibration or --calibration-recording, not both")
    if calibration_recording is not None and not Path(calibration_recording).is_file():
        raise EdgeError(f"--calibration-recording: file not found: {calibration_recording}")
    check_replaceable(Path(output), force)
    prof = load_profile(profile)
    specs = component_specs(prof, precision)
    if calibration is not None:
        check_camera_folders(Path(calibration), [c.name for c in prof.cameras])
    return prof, specs


def component_specs(profile: Profile, precision: str | None) -> dict[str, ComponentSpec]:
    """Vision and language engine/precision from the profile, `precision` overriding both."""
    specs = {"vision": profile.model.vision, "language": profile.model.language}
    if precision is None:
        return specs
    try:
        return {k: ComponentSpec(engine=v.engine, precision=precision) for k, v in specs.items()}
    except ValueError as e:
        raise EdgeError(f"--precision {precision}: {validation_reason(e)} (profile {profile.name})") from e


def check_replaceable(output: Path, force: bool) -> None:
    """Refuse an --output that exists, unless --force and it is a bundle (a directory with a manifest):
    --force never deletes anything else."""
    if not (output.exists() or output.is_symlink()):
        return
    if not force:
        raise EdgeError(f"output exists: {output} (use --force to replace it)")
    if output.is_symlink() or not output.is_dir() or not (output / "manifest.json").is_file():
        raise EdgeError(f"output {output} exists and is not a bundle (no manifest.json): --force only replaces a "
                        "bundle; choose another --output")
