"""Finding and opening the UART of a serial DUT, with the errors people actually hit.

A port is named in the profile (`port: /dev/ttyACM0`) or found by USB identity (`usb:
"0483:374b"`, optionally `serial_number:`), since /dev names move when boards are replugged.
The port is locked exclusively: two programs reading one UART each see half the lines, which
looks like a broken DUT rather than a busy port.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

import serial
from serial.tools import list_ports

from .base import DeviceError

READ_TIMEOUT_S = 0.02  # pyserial read granularity; deadlines are kept by the caller
LIST_HINT = "list ports with `python3 -m serial.tools.list_ports -v`"


def parse_vid_pid(text: str) -> tuple[int, int]:
    """`"0483:374b"` -> (0x0483, 0x374b); one-line error otherwise."""
    vid, sep, pid = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(vid, 16), int(pid, 16)
    except ValueError:
        raise DeviceError(
            f'usb {text!r} is not VID:PID in hex (e.g. "0483:374b" for ST-LINK); {LIST_HINT}'
        ) from None


def find_port(
    usb: str | None, serial_number: str | None, ports: Iterable[Any] | None = None
) -> str:
    """The device path of the one port matching the USB identity (VID:PID and/or serial)."""
    vid_pid = parse_vid_pid(usb) if usb else None
    found = list(list_ports.comports() if ports is None else ports)
    matches = [
        p
        for p in found
        if (vid_pid is None or (p.vid, p.pid) == vid_pid)
        and (serial_number is None or p.serial_number == serial_number)
    ]
    wanted = " ".join(filter(None, [f"usb {usb}" if usb else "", serial_number or ""]))
    if not matches:
        seen = ", ".join(f"{p.device} ({p.vid or 0:04x}:{p.pid or 0:04x})" for p in found)
        raise DeviceError(
            f"no serial port matches {wanted} (ports: {seen or 'none'}); plug the board in or "
            f"fix `usb:` / `serial_number:` in the profile"
        )
    if len(matches) > 1:
        raise DeviceError(
            f"{len(matches)} serial ports match {wanted} "
            f"({', '.join(p.device for p in matches)}); add `serial_number:` to the profile"
        )
    return str(matches[0].device)


def open_port(path: str, baud: int) -> serial.Serial:
    """Open `path` at `baud`, 8N1, locked; DeviceError naming the fix on failure."""
    try:
        return serial.Serial(
            path, baudrate=baud, timeout=READ_TIMEOUT_S, write_timeout=10, exclusive=True
        )
    except serial.SerialException as error:
        raise DeviceError(_explain(path, error)) from None
    except (OSError, ValueError) as error:
        raise DeviceError(f"cannot open serial port {path} at {baud} baud: {error}") from None


def _explain(path: str, error: serial.SerialException) -> str:
    text = str(error)
    code = error.errno if isinstance(error.errno, int) else None
    if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN):
        return (
            f"serial port {path} is busy: another program holds it (a serial monitor, an IDE, "
            f"another edgebench); close that program and retry"
        )
    if code == errno.ENOENT or "No such file" in text:
        return (
            f"serial port {path} does not exist; plug the board in, or set `port:` (or `usb:`) "
            f"in the device profile ({LIST_HINT})"
        )
    if code == errno.EACCES or "Permission denied" in text:
        return (
            f"no permission to open {path}; add yourself to its group "
            f"(`sudo usermod -aG dialout $USER`, then log in again)"
        )
    return f"cannot open serial port {path}: {text}"
