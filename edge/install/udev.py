"""udev rules: a stable name and low latency for the arm's serial adapter, and RealSense access.

Sources: reference/jetson.md §6 (vendor arm rules: ATTRS{idVendor}/{idProduct}/{serial},
SYMLINK, ENV{ID_MM_DEVICE_IGNORE}, FTDI latency_timer) and §5 (librealsense's
99-realsense-libusb.rules: vendor 8086 + product id, MODE 0666, GROUP plugdev).
"""

from __future__ import annotations

SERIAL_RULES_PATH = "/etc/udev/rules.d/70-tinyvla-edge-serial.rules"
REALSENSE_RULES_PATH = "/etc/udev/rules.d/99-realsense-libusb.rules"
ARM_SYMLINK = "tinyvla-arm"
FTDI_VENDOR = "0403"


def serial_rules(profile_name: str, vendor: str | None, product: str | None, serial: str | None) -> str:
    """Rules for the arm's USB-serial adapter.

    The FTDI rule applies to every FTDI adapter: the driver's 16 ms default latency timer batches
    bytes and turns each serial round trip into ~16 ms. The arm rule matches the adapter by
    vendor/product/serial so the arm is always /dev/tinyvla-arm whatever ttyUSBn it enumerates as,
    and keeps ModemManager from probing it (probing writes AT commands into the arm's protocol).
    """
    lines = [
        f"# Written by `tinyvla-edge install` for profile {profile_name}; rerunning install rewrites it.",
        "# FTDI adapters: 1 ms latency timer instead of the driver's 16 ms default.",
        'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"',
    ]
    match = []
    if vendor:
        match.append(f'ATTRS{{idVendor}}=="{vendor.lower()}"')
    if product:
        match.append(f'ATTRS{{idProduct}}=="{product.lower()}"')
    if serial:
        match.append(f'ATTRS{{serial}}=="{serial}"')
    if match:
        lines += [
            f"# The arm's adapter: stable /dev/{ARM_SYMLINK}, group dialout, no ModemManager probing.",
            ", ".join(['SUBSYSTEM=="tty"', *match, f'SYMLINK+="{ARM_SYMLINK}"', 'GROUP="dialout"', 'MODE="0660"',
                       'ENV{ID_MM_DEVICE_IGNORE}="1"']),
        ]
    else:
        lines += [
            "# No arm adapter identity in the profile (arm.usb_vendor/usb_product) or --arm-serial:",
            "# no stable symlink; keep ModemManager off every USB serial port instead.",
            'SUBSYSTEM=="tty", KERNEL=="ttyUSB*|ttyACM*", ENV{ID_MM_DEVICE_IGNORE}="1"',
        ]
    return "\n".join(lines) + "\n"


# librealsense config/99-realsense-libusb.rules product ids (reference §5).
REALSENSE_CAMERA_PIDS = (
    "0a80", "0a66", "0aa3", "0aa2", "0aa5", "0abf", "0acb", "0ad0", "04b4", "0ad1", "0ad2", "0ad3", "0ad4",
    "0ad5", "0ad6", "0af2", "0af6", "0afe", "0aff", "0b00", "0b01", "0b03", "0b07", "0b0c", "0b0d", "0b3a",
    "0b3d", "0b48", "0b49", "0b4b", "0b4d", "0b52", "0b56", "0b5b", "0b5c", "0b64", "0b68", "0b6a", "0b6b",
    "1155",
)
REALSENSE_DFU_PIDS = ("0ab3", "0adb", "0adc", "0ade", "0b55")
REALSENSE_IMU_PIDS = (
    "0ad5", "0af2", "0afe", "0aff", "0b00", "0b01", "0b3a", "0b3d", "0b4b", "0b4d", "0b56", "0b5b", "0b5c",
    "0b64", "0b68", "0b6a", "0b6b",
)


def realsense_rules() -> str:
    """RealSense device access for the RSUSB (libusb) backend, in librealsense's format.

    The R200 helper RUN and the T265/Movidius entries are left out: TinyVLA rigs use D4xx cameras.
    """
    usb = 'SUBSYSTEMS=="usb", ATTRS{{idVendor}}=="8086", ATTRS{{idProduct}}=="{pid}", MODE:="0666", GROUP:="plugdev"'
    lines = ["##Version=1.1##", "# Intel RealSense cameras (written by `tinyvla-edge install`)"]
    lines += [usb.format(pid=pid) for pid in REALSENSE_CAMERA_PIDS]
    lines.append("# DFU / recovery")
    lines += [usb.format(pid=pid) for pid in REALSENSE_DFU_PIDS]
    lines.append("# IMU (iio / hid_sensor) for the IMU-capable models")
    for pid in REALSENSE_IMU_PIDS:
        lines.append(f'KERNEL=="iio*", ATTRS{{idVendor}}=="8086", ATTRS{{idProduct}}=="{pid}", MODE:="0777", '
                     'GROUP:="plugdev", RUN+="/bin/sh -c \'chmod -R 0777 /sys/%p\'"')
        lines.append(f'DRIVER=="hid_sensor*", ATTRS{{idVendor}}=="8086", ATTRS{{idProduct}}=="{pid}", '
                     'RUN+="/bin/sh -c \'chmod -R 0777 /sys/%p && chmod 0777 /dev/%k\'"')
    return "\n".join(lines) + "\n"
