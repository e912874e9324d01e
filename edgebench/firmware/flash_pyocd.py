"""pyOCD through its Python API (CMSIS-DAP and ST-Link probes): program the image, then reset.
An optional extra (`pip install pyocd`); the probe is chosen by its unique id when the
profile gives one, else the only probe attached."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

from .flasher import Flasher, FlashError, register


@register
class PyOcdFlasher(Flasher):
    name = "pyocd"
    option_keys: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "target": str,
        "probe": str,
        "frequency": int,
    }
    required_keys = ("target",)

    def _modules(self) -> tuple[Any, Any]:
        try:
            helpers = importlib.import_module("pyocd.core.helpers")
            programmer = importlib.import_module("pyocd.flash.file_programmer")
        except ImportError:
            raise FlashError("pyocd is not installed; pip install pyocd") from None
        return helpers, programmer

    def check(self) -> None:
        self._modules()

    def flash(self, image: Path) -> None:
        helpers, programmer = self._modules()
        session = helpers.ConnectHelper.session_with_chosen_probe(
            blocking=False,
            unique_id=self.options.get("probe"),
            target_override=self.options["target"],
            frequency=self.options.get("frequency", 4_000_000),
        )
        if session is None:
            which = self.options.get("probe") or "any"
            raise FlashError(f"no debug probe found ({which}); connect the board's probe")
        with session:
            programmer.FileProgrammer(session).program(str(image))
            session.target.reset()
        return None
