"""Steps, plans and their execution.

A step is idempotent by construction: `plan(ctx)` is its check (it reads state and returns only
what is still missing), applying writes the files atomically and runs the commands, and
verification plans again (nothing may be left) and then runs the step's proof commands (a CUDA
kernel, an int8 matmul). A step with nothing left to do is "ok"; a second install run is all "ok".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edge.errors import EdgeError
from edge.install.actions import Command, FileChange, StagedCommandFile, apply_file_change
from edge.install.context import InstallContext, InstallError


@dataclass
class StepPlan:
    """What one step still has to do, and what proves it worked."""

    files: list[FileChange] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    verify: list[Command] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    state: str = ""  # one line: what is true now (or will be)
    pending: list[Command] = field(default_factory=list)  # staged: recorded by an earlier run
    needs_consent: bool = False
    reboot_required: bool = False

    @property
    def nothing_to_do(self) -> bool:
        return not self.files and not self.commands


class Step(Protocol):
    """One provisioning concern (apt, venv, udev, power mode, ...).

    A step may also define `apply(ctx, plan) -> StepPlan` when its commands need interpreting
    rather than just an exit code (nvpmodel's reboot prompt); otherwise its commands are run.
    """

    name: str
    title: str
    covers: str  # the reference/jetson.md §8 checklist item(s) this step implements

    def skip_reason(self, ctx: InstallContext) -> str | None:
        """Why this step does not apply here (None: it applies)."""

    def plan(self, ctx: InstallContext) -> StepPlan:
        """Check the current state and return what is left to do. Must not change anything."""


@dataclass
class StepResult:
    name: str
    title: str
    covers: str
    status: str  # ok | planned | changed | recorded | pending | skipped | needs-consent | reboot-required
    plan: StepPlan | None
    state: str = ""  # what is true after this run (the re-planned state after a change)

    def to_dict(self) -> dict:
        plan = self.plan or StepPlan()
        return {
            "name": self.name, "title": self.title, "covers": self.covers, "status": self.status,
            "state": self.state, "notes": plan.notes,
            "files": [f.to_dict() for f in plan.files],
            "commands": [c.to_dict() for c in plan.commands],
            "verify": [c.to_dict() for c in plan.verify],
            "pending": [c.to_dict() for c in plan.pending],
        }


def plan_step(step: Step, ctx: InstallContext, staged_file: StagedCommandFile | None) -> StepPlan:
    """Plan a step; on a staged root, commands an earlier run recorded count as done (pending)."""
    plan = step.plan(ctx)
    if staged_file is not None:
        recorded = staged_file.recorded(step.name)
        plan.pending = [c for c in plan.commands if c.shell() in recorded]
        plan.commands = [c for c in plan.commands if c.shell() not in recorded]
        if plan.nothing_to_do:
            plan.verify = []
    elif plan.nothing_to_do:
        plan.verify = []
    return plan


def _run(ctx: InstallContext, step: Step, command: Command) -> None:
    assert ctx.runner is not None
    try:
        result = ctx.runner(command.full_argv(), timeout=command.timeout_s)
    except EdgeError as e:
        raise InstallError(f"step '{step.name}': {e}") from e
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()
        last = output[-1] if output else "(no output)"
        fix = f"; {command.fix}" if command.fix else ""
        raise InstallError(f"step '{step.name}': '{command.shell()[:160]}' exited {result.returncode}: {last[:200]}{fix}")


def apply_step(step: Step, ctx: InstallContext, plan: StepPlan, staged_file: StagedCommandFile | None) -> StepResult:
    """Apply one planned step and verify it; raise InstallError on failure.

    Files are written (atomically) before commands run, so a command sees its configuration;
    deletions happen after them, so e.g. a unit is stopped before its file goes.
    """
    writes = [f for f in plan.files if f.content is not None]
    deletes = [f for f in plan.files if f.content is None]
    for change in writes:
        apply_file_change(ctx.root, change)
    if staged_file is not None:
        for change in deletes:
            apply_file_change(ctx.root, change)
        staged_file.add(step.name, plan.commands + plan.verify)
        status = "recorded" if plan.commands else "changed"
        return StepResult(step.name, step.title, step.covers, status, plan, plan.state)

    if hasattr(step, "apply"):
        plan = step.apply(ctx, plan)  # type: ignore[attr-defined]
        if plan.reboot_required:
            return StepResult(step.name, step.title, step.covers, "reboot-required", plan, plan.state)
    else:
        for command in plan.commands:
            _run(ctx, step, command)
    for change in deletes:
        apply_file_change(ctx.root, change)

    again = step.plan(ctx)
    if not again.nothing_to_do:
        left = [f.path for f in again.files] + [c.shell()[:80] for c in again.commands]
        raise InstallError(f"step '{step.name}' did not take effect; still to do: {', '.join(left)}")
    for command in plan.verify:
        _run(ctx, step, command)
    return StepResult(step.name, step.title, step.covers, "changed", plan, again.state)
