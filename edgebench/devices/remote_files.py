"""Files on an SSH device: a content-addressed cache filled over SFTP, and fetching results back.

Models, samples and the agent are named on the device by their sha256, so a second run finds
them already there and copies nothing; every file is hashed *on the device* before use, so a
truncated upload or a file changed behind our back is caught, not benchmarked. Uploads land
under a temporary name and are renamed only after their hash checks out, so an interrupted
copy never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .base import DeviceError
from .ssh_connect import SSH_ERRORS

# Runs on the device with the device's Python (3.8 syntax; stdlib only). Modes:
#   check  {"mkdir": [...], "files": {path: sha256}, "df": dir} -> {"bad": [...], "free": bytes}
#          (any mode may answer {"error": "one line for the user"} instead)
#   commit {"files": {part: [final, sha256]}}                     -> {"bad": {part: got}}
#   prune  {"dir": versions dir, "current": name, "keep": n}      -> {"removed": [...],
#          "busy": [...]}: touch the current version, then delete all but the `keep` most
#          recently used, sparing any that a running process has on its PYTHONPATH (read
#          from /proc; without /proc nothing is deleted).
DEVICE_SCRIPT = r"""
import hashlib, json, os, shutil, sys
mode, request = sys.argv[1], json.loads(sys.argv[2])
def sha(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
def hashed(path):
    try:
        return sha(path)
    except OSError:
        return None
def in_use():
    paths = set()
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/environ" % pid, "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"PYTHONPATH="):
                paths.update(os.fsdecode(part) for part in item[11:].split(b":"))
    return paths
def fail(text):
    sys.stdout.write(json.dumps({"error": text}) + "\n")
    sys.exit(0)
reply = {}
if mode == "check":
    try:
        for directory in request.get("mkdir", []):
            os.makedirs(directory, exist_ok=True)
    except OSError as error:
        fail("cannot create %s on the device (%s); set `workdir:` in the profile to a "
             "directory this user can write" % (error.filename, error.strerror))
    reply["bad"] = [p for p, want in request["files"].items() if hashed(p) != want]
    if request.get("df"):
        info = os.statvfs(request["df"])
        reply["free"] = info.f_bavail * info.f_frsize
elif mode == "prune":
    base = request["dir"]
    os.utime(os.path.join(base, request["current"]))
    def used(path):
        try:
            return os.path.getmtime(path)
        except OSError:  # removed meanwhile by another host's prune
            return 0.0
    versions = sorted((os.path.join(base, name) for name in os.listdir(base)),
                      key=used, reverse=True)
    old = versions[request["keep"]:]
    busy = in_use() if old and os.path.isdir("/proc/self") else set(old)
    reply["busy"] = [path for path in old if path in busy]
    reply["removed"] = [path for path in old if path not in busy]
    for path in reply["removed"]:
        shutil.rmtree(path, ignore_errors=True)
else:
    reply["bad"] = {}
    for part, (final, want) in request["files"].items():
        got = hashed(part)
        if got == want:
            os.replace(part, final)
        else:
            reply["bad"][part] = got
            try:
                os.remove(part)
            except OSError:
                pass
sys.stdout.write(json.dumps(reply) + "\n")
"""


@dataclass
class Upload:
    """One local file and where its verified copy lives on the device."""

    local: Path
    remote: str
    sha256: str


#: Runs the device script: (mode, request) -> parsed JSON reply. Raises DeviceError on failure.
DeviceCall = Callable[[str, dict], dict]


class RemoteStore:
    """Puts files on the device by content and proves they arrived intact."""

    def __init__(self, sftp: paramiko.SFTPClient, call: DeviceCall, label: str) -> None:
        self.sftp = sftp
        self.call = call
        self.label = label
        self.copied_bytes = 0
        self.reused = 0

    def ensure(self, uploads: list[Upload], mkdir: list[str], free_dir: str) -> None:
        """Make every upload present with its hash; copy only the missing or wrong ones."""
        wanted = {u.remote: u.sha256 for u in uploads}
        reply = self.call("check", {"mkdir": mkdir, "files": wanted, "df": free_dir})
        bad = set(reply["bad"])
        self.reused += len(wanted) - len(bad)
        if not bad:
            return
        parts: dict[str, list[str]] = {}
        for upload in uploads:
            if upload.remote not in bad:
                continue
            self._parent_dirs(posixpath.dirname(upload.remote))
            part = f"{upload.remote}.part-{uuid.uuid4().hex[:8]}"
            try:
                self.sftp.put(str(upload.local), part, confirm=True)
            except SSH_ERRORS as error:
                self._remove_quietly(part)
                what = f"copying {upload.local.name} to {upload.remote}"
                raise self.write_failed(what, error, free_dir) from None
            self.copied_bytes += upload.local.stat().st_size
            parts[part] = [upload.remote, upload.sha256]
        broken = self.call("commit", {"files": parts})["bad"]
        if broken:
            part, got = next(iter(broken.items()))
            raise DeviceError(
                f"{self.label}: {parts[part][0]} has sha256 {got} on the device after copying, "
                f"expected {parts[part][1]}; the copy was corrupted (disk full or failing "
                f"storage?): check `df` on the device and retry"
            )

    def write_failed(self, what: str, error: BaseException, directory: str) -> DeviceError:
        """A failed write on the device, with the free space there and the fix."""
        return DeviceError(
            f"{self.label}: {what} failed ({error or type(error).__name__}); "
            f"{self._free(directory)} free in {directory}: free some space on the device or "
            f"point `workdir:` at a larger filesystem"
        )

    def _parent_dirs(self, directory: str) -> None:
        try:
            self.sftp.stat(directory)
        except OSError:
            self._parent_dirs(posixpath.dirname(directory))
            self.sftp.mkdir(directory)

    def _remove_quietly(self, path: str) -> None:
        with contextlib.suppress(*SSH_ERRORS):
            self.sftp.remove(path)

    def _free(self, directory: str) -> str:
        try:
            free = self.call("check", {"files": {}, "df": directory})["free"]
        except DeviceError:
            return "unknown space"
        return f"{free / 1024:.0f} KiB"


def fetch_tree(sftp: paramiko.SFTPClient, remote: str, local: Path) -> int:
    """Copy a remote directory tree into `local` (merging); returns the number of files.

    Best effort per file: a file that vanishes or cannot be read is skipped, so a partial
    run directory still comes back with everything readable.
    """
    count = 0
    try:
        entries = sftp.listdir_attr(remote)
    except OSError:
        return 0
    local.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        source = posixpath.join(remote, entry.filename)
        target = local / entry.filename
        if stat.S_ISDIR(entry.st_mode or 0):
            count += fetch_tree(sftp, source, target)
        elif stat.S_ISREG(entry.st_mode or 0):
            try:
                sftp.get(source, str(target))
                count += 1
            except OSError:
                continue
    return count


def json_reply(text: str, label: str) -> dict:
    """The last line of a device script's stdout as JSON (rc files may print before it)."""
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        reply = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise DeviceError(
            f"{label}: unexpected answer from the device's Python: {text.strip()[:200]!r}"
        ) from None
    if "error" in reply:
        raise DeviceError(f"{label}: {reply['error']}")
    return reply
