"""Power meters: the Meter contract, its drivers (one module each) and meter profiles."""

from .base import PHASES, Meter, MeterError, MeterInfo
from .registry import METERS, meter_class, register

__all__ = ["METERS", "PHASES", "Meter", "MeterError", "MeterInfo", "meter_class", "register"]
