"""Small file-system helpers shared by the stages that write outputs.

- :func:`atomic_folder`: write a folder's new content beside it, then swap it in.
- The output folder's marker (:data:`OUTPUT_MARKER`, :func:`output_folder_problem`,
  :func:`claim_output_folder`): respop writes only into folders it created.
- Temporary folders named after their process (:func:`owner_token`, :func:`run_workspace`,
  :func:`leftovers`): a folder left by a killed process is recognised as such (same host, the
  process is gone) and removed by the next run; one whose process still runs is never touched.
- Files by name, size and modification time (:func:`stat_files`, :func:`stat_file`): the
  fingerprints of the inputs (respop.stages, respop.pmsi.stage), without reading the files.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from respop.errors import DiskFullError, is_disk_full

OUTPUT_MARKER = ".respop-output"
"""Marker file of an output folder respop created (or adopted: see :func:`output_folder_problem`)."""

OUTPUT_ENTRIES = frozenset(
    {
        "input", "territories", "cases", "strata", "validation", "dossiers", "timings.json", "catalogue.json",
        "respop.sqlite", "respop.sqlite-wal", "respop.sqlite-shm", "respop.sqlite-journal",
    }
)
"""What respop writes in an output folder: a folder holding only these (and respop's hidden
temporaries) was written by respop before the marker existed, and is adopted."""

WORKSPACE_PREFIX = "respop-run-"
"""Name of the private temporary folder of a run (``input.workspace_dir`` or the system's
temporary folder), followed by its owner token."""

_TOKEN = r"(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-(?P<start>[0-9a-f]{8}|0)"
_OWNED = (
    re.compile(rf"^\.(?P<name>.+)\.tmp-{_TOKEN}-[^-]+$"),  # atomic_folder's new content
    re.compile(rf"^\.(?P<name>.+)\.old-{_TOKEN}$"),  # atomic_folder's previous content, being removed
    re.compile(rf"^{re.escape(WORKSPACE_PREFIX)}{_TOKEN}-[^-]+$"),  # a run's private workspace
)


# -- processes ------------------------------------------------------------------------------


def host_tag(host: str | None = None) -> str:
    """8 hex digits naming a host (its name hashed)."""
    return hashlib.sha256((host or socket.gethostname()).encode()).hexdigest()[:8]


def _start_tag(pid: int) -> str:
    """8 hex digits naming one process among those that had ``pid`` on this host: its start
    time since boot and the boot id (Linux ``/proc``); ``0`` where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "0"
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return hashlib.sha256(f"{boot}:{fields[19]}".encode()).hexdigest()[:8]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def process_identity() -> dict:
    """This process, as recorded by what it leaves behind: ``host``, ``pid``, ``start``."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _start_tag(pid)}


def owner_token() -> str:
    """``<pid>-<host tag>-<start tag>``: the part of a temporary folder's name naming its process."""
    pid = os.getpid()
    return f"{pid}-{host_tag()}-{_start_tag(pid)}"


def process_alive(pid: int, host: str, start: str = "0") -> bool | None:
    """Whether the process ``pid`` started as ``start`` on the host tagged ``host`` still runs:
    None when it is another host's (it cannot be told from here)."""
    if host != host_tag():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _zombie(pid):
        return False
    now = _start_tag(pid)
    return not (start != "0" and now != "0" and now != start)  # the pid was given to another process


def identity_alive(identity: dict | None) -> bool | None:
    """:func:`process_alive` of a :func:`process_identity` record (None: unknown, or no record)."""
    if not isinstance(identity, dict) or not isinstance(identity.get("pid"), int) or not identity.get("host"):
        return None
    return process_alive(identity["pid"], host_tag(str(identity["host"])), str(identity.get("start") or "0"))


# -- temporary folders ------------------------------------------------------------------------


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target``, on failure it is
    removed, so that a failed run leaves the previous results as they were. Only ``target`` is
    replaced; the temporary names carry the process's :func:`owner_token`, so that what a killed
    process leaves is found by :func:`leftovers`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    token = owner_token()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{token}-", dir=target.parent))
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):  # one line, not the writer's traceback
            raise DiskFullError(target, "its previous content is intact") from None
        raise
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{token}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        if old.is_symlink() or not old.is_dir():
            old.unlink()  # a link is removed, never what it points to
        else:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def run_workspace(base: Path | None = None) -> Iterator[Path]:
    """A private temporary folder for a run's patient-level files (``base``: ``input.workspace_dir``,
    default the system's temporary folder), named after this process and removed at the end."""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{owner_token()}-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def leftovers(folders: Iterable[Path | None]) -> list[Path]:
    """respop's temporary folders in ``folders`` (not below) whose process has ended on this host:
    those of :func:`atomic_folder` and :func:`run_workspace`. Another host's are never listed."""
    found: list[Path] = []
    for folder in folders:
        if folder is None or not folder.is_dir():
            continue
        try:
            entries = sorted(folder.iterdir())
        except OSError:  # not readable: nothing of ours there
            continue
        for entry in entries:
            for pattern in _OWNED:
                match = pattern.match(entry.name)
                if match:
                    if process_alive(int(match["pid"]), match["host"], match["start"]) is False:
                        found.append(entry)
                    break
    return found


def remove(paths: Iterable[Path]) -> list[Path]:
    """Remove files and folders (a link, not what it points to); returns those still there
    (e.g. another user's)."""
    left = []
    for path in paths:
        try:
            if path.is_symlink() or not path.is_dir():
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass
        if path.exists() or path.is_symlink():
            left.append(path)
    return left


# -- what a folder holds, cheaply -------------------------------------------------------------


def stat_files(folder: Path | None, skip: tuple[Path, ...] = ()) -> dict | None:
    """relative path → [size, modification time in ns] of every file below ``folder`` (hidden
    names, private workspaces and the folders of ``skip`` left out); None when there is no such
    folder."""
    if folder is None or not folder.is_dir():
        return None
    skipped = {os.path.realpath(p) for p in skip if p is not None}
    out: dict[str, list[int]] = {}
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith((".", "respop-"))  # hidden, or a private workspace
            and os.path.realpath(os.path.join(root, d)) not in skipped
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            try:
                st = path.stat()
            except OSError:
                continue
            out[path.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def stat_file(path: Path | None) -> list[int] | None:
    """[size, modification time in ns] of a file; None when there is no such file."""
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


# -- output folders ---------------------------------------------------------------------------


def _temporary(name: str) -> bool:
    return name in (".timings.json.tmp", ".catalogue.json.tmp") or any(p.match(name) for p in _OWNED[:2])


def output_folder_problem(folder: Path) -> str | None:
    """Why respop must not write into ``folder`` (None: it may). It may when the folder is
    absent, empty, holds respop's marker, or holds only what respop writes (an output folder
    from before the marker)."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return "exists and is not a folder"
    if (folder / OUTPUT_MARKER).is_file():
        return None
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in OUTPUT_ENTRIES and not _temporary(p.name))
    if not foreign:
        return None
    shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
    return (
        f"exists, is not empty ({shown}) and was not created by respop (no {OUTPUT_MARKER} file): "
        "respop replaces its steps' folders there; choose a new or empty folder"
    )


def claim_output_folder(folder: Path) -> None:
    """Create ``folder`` if needed and mark it as respop's; refuse a folder respop must not write
    into (:func:`output_folder_problem`), raising ``ValueError`` with the reason."""
    problem = output_folder_problem(folder)
    if problem is not None:
        raise ValueError(f"{folder} {problem}")
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OUTPUT_MARKER
    if not marker.is_file():
        marker.write_text("respop output folder: the steps' folders here are replaced by each run\n", encoding="utf-8")
