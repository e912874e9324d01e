"""Opening a USB serial meter's port (LPM01A, PPK2): the two ways it fails, worded alike.

A profile without a port, and a port that cannot be opened (absent, held by another
program, no permission), are the commonest set-up mistakes with serial meters; both become
one line naming the meter, the port and the fix, whichever driver hit them.
"""

from __future__ import annotations

import serial

from .base import MeterError


def open_serial_port(
    meter: str,
    port: str,
    model: str,
    *,
    port_hint: str,
    fix: str,
    timeout_s: float,
    baud: int = 9600,
) -> serial.Serial:
    """`port` opened for `model`; `port_hint` says what to set port: to, `fix` what to check
    when opening fails. `baud` is nominal for USB CDC devices."""
    if not port:
        raise MeterError(f"meter profile {meter} names no serial port; set port: {port_hint}")
    try:
        return serial.Serial(port, baud, timeout=timeout_s)
    except (serial.SerialException, OSError) as error:
        raise MeterError(f"cannot open {model} at {port} ({error}); {fix}") from None
