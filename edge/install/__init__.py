"""Provisioning a Jetson (or a staged root tree) for a deployment profile.

`install_device` plans idempotent steps (check / apply / verify) and runs them; see
`edge/install/steps/` for what each step does and which reference checklist item it covers.
"""

from edge.install.installer import install_device, profile_matches, render_install, select_profile

__all__ = ["install_device", "profile_matches", "render_install", "select_profile"]
