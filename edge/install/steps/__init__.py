"""The install steps, in the order they run.

Order matters: swap exists before anything compiles; the venv before wheels; cuSPARSELt before
the torch verification that imports it; nvpmodel before jetson_clocks (clocks lock to the active
mode's caps); the service last, since its CPUAffinity depends on the power mode.
"""

from edge.install.steps.memory import SwapStep
from edge.install.steps.packages import AptStep
from edge.install.steps.power import ClocksStep, PowerModeStep
from edge.install.steps.python_env import CusparseltStep, VenvStep, WheelsStep
from edge.install.steps.realsense import RealSenseStep
from edge.install.steps.serial import ConflictsStep, GroupsStep, SerialUdevStep
from edge.install.steps.service import ServiceStep

STEPS = (
    AptStep(),
    SwapStep(),
    VenvStep(),
    CusparseltStep(),
    WheelsStep(),
    RealSenseStep(),
    GroupsStep(),
    SerialUdevStep(),
    ConflictsStep(),
    PowerModeStep(),
    ClocksStep(),
    ServiceStep(),
)
