"""The virtual MCU's error: one line naming the problem and the fix."""


class VirtualMcuError(RuntimeError):
    """The virtual MCU cannot start or run as asked (bad model, bad option, died early)."""
