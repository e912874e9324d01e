"""Write ``.npz`` files whose bytes depend only on the arrays.

Why not ``np.savez``: it stamps every zip member with the current time, so two
builds of the same data would give different files and different sha256s in
the manifest. This writer fixes the member order, the timestamp, the
permissions and the compression level; :func:`numpy.load` reads the result
like any other ``.npz``.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)
_COMPRESSLEVEL = 6


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Return the deterministic ``.npz`` (deflated zip of ``.npy`` members) for ``arrays``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.ascontiguousarray(arrays[key]), version=(1, 0), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=_COMPRESSLEVEL)
    return out.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temp file then rename)."""
    data = npz_bytes(arrays)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
