"""The drivers' error tree. Vendor errors are re-raised `from e` with a hint."""


class DriverError(Exception):
    """Any hardware-side failure; the message is one line with what to do."""


class NotConnectedError(DriverError):
    """The device is not open or vanished."""


class DeviceTimeoutError(DriverError):
    """The device did not answer within its timeout."""


class ProtocolError(DriverError):
    """Bytes that do not form a valid frame or message."""


class CameraStalled(DeviceTimeoutError):
    """A camera delivered no new frame in time (or a recording ended)."""


class SpecError(DriverError):
    """A camera or fault spec string that does not parse."""


class PortNotFound(NotConnectedError):
    """A serial port path that does not exist."""


class PermissionDenied(NotConnectedError):
    """A device node this user may not open (serial: not in the `dialout` group)."""


class PortBusy(NotConnectedError):
    """A serial port another process holds open."""


class IncompatibleFirmware(ProtocolError):
    """The arm firmware speaks another serial protocol version."""


class HandshakeRefused(ProtocolError):
    """The arm answered HELLO in valid frames, but not with an INFO this host can accept."""


class CameraNotFound(NotConnectedError):
    """No camera matches the request; the message lists what is connected."""
