"""The one layer every file this project writes goes through: local paths and `gs://` alike.

Spot TPU VMs are deleted on preemption and pod hosts share no disk, so a run's workdir is often
a bucket. Orbax writes checkpoints there itself; json/png/md files go through here, via
`etils.epath` (the path library orbax uses) for URLs and plain `os` for local paths.

Local writes are atomic (a uniquely named temporary file in the same directory, then a rename),
so a kill never leaves a half-written file and two processes never share a temporary name.
Object stores replace an object whole on upload, which is atomic already.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from typing import Any


def is_url(path: str) -> bool:
    """True for `scheme://...` paths (gs://, s3://, ...) that only epath can open."""
    return "://" in str(path)


def resolve(path: str) -> str:
    """`~` expanded and local paths made absolute; URLs unchanged."""
    path = str(path)
    if is_url(path):
        return path.rstrip("/")
    return os.path.abspath(os.path.expanduser(path))


def join(path: str, *parts: str) -> str:
    """`os.path.join` that keeps `gs://bucket/x` intact."""
    if is_url(path):
        return "/".join([str(path).rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(path, *parts)


def _epath(path: str):
    from etils import epath  # lazy: only URL workdirs pay for the import

    return epath.Path(path)


def exists(path: str) -> bool:
    path = resolve(path)
    return _epath(path).exists() if is_url(path) else os.path.exists(path)


def move(src: str, dst: str) -> None:
    """Rename `src` (a file or directory) to `dst` (copy and delete on object stores)."""
    if is_url(src) or is_url(dst):
        _epath(src).rename(_epath(dst))
    else:
        shutil.move(src, dst)


def makedirs(path: str) -> str:
    """Create `path` (and parents) if missing; returns the resolved path."""
    path = resolve(path)
    if is_url(path):
        _epath(path).mkdir(parents=True, exist_ok=True)
    else:
        os.makedirs(path, exist_ok=True)
    return path


def read_text(path: str) -> str:
    path = resolve(path)
    if is_url(path):
        return _epath(path).read_text()
    with open(path) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` whole (atomic rename locally; one upload on object stores)."""
    path = resolve(path)
    if is_url(path):
        _epath(path).write_bytes(data)
        return
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str, obj: Any) -> None:
    """Pretty, key-sorted JSON (numpy scalars as floats)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float))


def read_json(path: str) -> Any:
    return json.loads(read_text(path))


def write_figure(path: str, fig, **savefig_kwargs: Any) -> None:
    """A matplotlib figure saved through this layer (format from the file name)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(path)[1].lstrip(".") or "png", **savefig_kwargs)
    write_bytes(path, buf.getvalue())
