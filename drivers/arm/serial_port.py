"""Opening a serial port with errors a user can act on.

pyserial reports every failure as `SerialException` with an errno buried in the message; here
each one a user can cause becomes a one-line DriverError that says what to do.
"""

from __future__ import annotations

import errno
import os

import serial

from drivers.errors import NotConnectedError, PermissionDenied, PortBusy, PortNotFound


def connected_ports() -> list[str]:
    """Serial ports the OS reports, as device paths (empty when none or not listable)."""
    try:
        from serial.tools import list_ports

        return sorted(port.device for port in list_ports.comports())
    except Exception:  # listing is a hint in an error message; never let it mask the real error
        return []


def describe_connected_ports() -> str:
    ports = connected_ports()
    return ", ".join(ports) if ports else "none found"


def open_serial(port: str, baud: int) -> serial.Serial:
    """Open `port` exclusively, raw 8N1, non-blocking (callers wait with select and write the fd).

    Raises PortNotFound, PermissionDenied, PortBusy or NotConnectedError.
    """
    if not os.path.exists(port):
        raise PortNotFound(
            f"serial port {port} does not exist (connected: {describe_connected_ports()}); "
            "check the cable, or use a stable name from /dev/serial/by-id/"
        )
    try:
        # exclusive=True takes flock(LOCK_EX): a second tinyvla-edge (or anything else using
        # flock) cannot interleave bytes with ours.
        return serial.Serial(port, baudrate=baud, timeout=0, exclusive=True)
    except (serial.SerialException, OSError) as e:
        raise explain_open_error(port, e) from e


def explain_open_error(port: str, error: BaseException) -> NotConnectedError:
    """Map an open() failure to the error a user can act on."""
    code = getattr(error, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return PermissionDenied(
            f"permission denied opening {port}: add yourself to the 'dialout' group "
            "(sudo usermod -aG dialout $USER) and log in again"
        )
    if code in (errno.EAGAIN, errno.EBUSY) or "exclusively lock" in str(error):
        return PortBusy(f"serial port {port} is in use by another program; close it (find it with: fuser {port})")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return PortNotFound(
            f"serial port {port} is not available (connected: {describe_connected_ports()}); check the cable"
        )
    return NotConnectedError(f"could not open serial port {port}: {error}")


def enable_low_latency(port: serial.Serial) -> bool:
    """Ask the driver for low-latency mode (FTDI: 1 ms instead of 16 ms batching).

    Returns whether it took; drivers without the flag (CDC-ACM, ptys) simply say no.
    """
    try:
        port.set_low_latency_mode(True)
        return True
    except (ValueError, OSError, NotImplementedError, AttributeError, serial.SerialException):
        return False
