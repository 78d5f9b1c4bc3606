"""The drivers' error tree. Vendor errors are re-raised `from e` with a hint."""


class DriverError(Exception):
    """Any hardware-side failure; the message is one line with what to do."""


class NotConnectedError(DriverError):
    """The device is not open or vanished."""


class DeviceTimeoutError(DriverError):
    """The device did not answer within its timeout."""


class ProtocolError(DriverError):
    """Bytes that do not form a valid frame or message."""
