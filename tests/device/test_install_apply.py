"""Applying steps for real (device mode) against the nvpmodel emulator: apply, verify, failure."""

from __future__ import annotations

import pytest

from edge.config import load_profile
from edge.device.detect import detect
from edge.device.nvpmodel import PowerModeError, read_conf, read_status, run_command
from edge.install.actions import FileChange, cmd
from edge.install.context import InstallContext, InstallError, resolve_settings
from edge.install.plan import StepPlan, apply_step, plan_step
from edge.install.steps.power import PowerModeStep
from tests.device.jetson_tree import AGX_ORIN_64GB_JP621, ORIN_NANO_SUPER_JP62


def device_context(root, profile: str) -> InstallContext:
    """A device-mode context on a staged tree: commands really run (only emulated tools here)."""
    device, prof = detect(root, {}), load_profile(profile)
    settings = resolve_settings(prof, device, staged=True, user="robot", index_url=None, venv=None,
                                arm_serial=None, enable_service=None, consent=False, env={})
    return InstallContext(root=str(root), mode="device", device=device, profile=prof, profile_ref=profile,
                          settings=settings, conf=read_conf(root), runner=run_command, is_root_user=False)


def test_power_step_applies_and_verifies_through_nvpmodel(staged, emulators):
    root = staged(ORIN_NANO_SUPER_JP62)
    emulators(root)
    ctx, power = device_context(root, "orin-nano-8gb"), PowerModeStep()
    plan = plan_step(power, ctx, None)
    assert [c.shell() for c in plan.commands] == ["nvpmodel -m 1"]
    result = apply_step(power, ctx, plan, None)
    assert result.status == "changed" and result.state.startswith("25W (ID 1")
    assert read_status(root) == 1
    assert plan_step(power, ctx, None).nothing_to_do  # second run: nothing to do


def test_power_step_reports_a_needed_reboot_without_blocking(staged, emulators):
    root = staged(AGX_ORIN_64GB_JP621)
    emulators(root)
    ctx, power = device_context(root, "agx-orin-64gb"), PowerModeStep()
    result = apply_step(power, ctx, plan_step(power, ctx, None), None)
    assert result.status == "reboot-required" and "sudo nvpmodel -m 0" in result.state
    assert read_status(root) is None


def test_nvpmodel_failure_is_reported(staged, emulators):
    root = staged(ORIN_NANO_SUPER_JP62)
    emulators(root, JETSON_EMU_NVPM_ERROR="Invalid power mode config")
    ctx, power = device_context(root, "orin-nano-8gb"), PowerModeStep()
    with pytest.raises(PowerModeError, match="NVPM ERROR: Invalid power mode config"):
        apply_step(power, ctx, plan_step(power, ctx, None), None)


class _FailingStep:
    """A step whose command fails (the emulator rejects mode 9) after writing a file."""

    name, title, covers = "demo", "a failing step", "-"

    def skip_reason(self, ctx):
        return None

    def plan(self, ctx):
        return StepPlan(files=[FileChange("/etc/demo.conf", "complete\n", None)],
                        commands=[cmd("nvpmodel", "-m", "9", fix="pick a mode the conf defines")])


def test_a_failing_command_stops_with_step_command_output_and_fix(staged, emulators):
    root = staged(ORIN_NANO_SUPER_JP62)
    emulators(root)
    ctx, failing = device_context(root, "orin-nano-8gb"), _FailingStep()
    with pytest.raises(InstallError) as err:
        apply_step(failing, ctx, failing.plan(ctx), None)
    message = str(err.value)
    assert message == ("step 'demo': 'nvpmodel -m 9' exited 1: NVPM ERROR: Invalid power mode 9; "
                       "pick a mode the conf defines")
    assert (root / "etc/demo.conf").read_text() == "complete\n"  # written whole (temp + rename), not half
