"""`faceswap models fetch insightface`: download an insightface model pack, check it, install it.

Never called implicitly: analysis only reads what is installed. The download lands in a hidden file
beside the pack folder, is checked against a sha256 when one is known or given, unpacked into a
hidden staging folder (no absolute paths, no `..`, no links), every ONNX file is loaded and routed
by insightface's own router, and only then is the folder renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from faceswap.atomic import temp_path
from faceswap.errors import BadInput
from faceswap.faces.insightface_backend import DEFAULT_PACK, default_model_root, pack_available, pack_dir

PACK_URLS = {"buffalo_l": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"}
REQUIRED_TASKS = ("detection", "recognition")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    pack: str
    folder: Path
    sha256: str
    files: tuple[str, ...]
    tasks: tuple[str, ...]
    already_installed: bool = False


def fetch_pack(
    pack: str = DEFAULT_PACK,
    model_root: Path | None = None,
    url: str | None = None,
    sha256: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 60.0,
) -> Fetched:
    """Install `pack` under ROOT/models/PACK; a pack that is already there is left alone."""
    root = Path(model_root).expanduser() if model_root else default_model_root()
    if pack_available(root, pack):
        folder = pack_dir(root, pack)
        return Fetched(pack, folder, "", tuple(p.name for p in folder.glob("*.onnx")), (), already_installed=True)
    url = url or PACK_URLS.get(pack)
    if url is None:
        raise BadInput(f"no download address known for pack '{pack}'; pass --url")
    destination = root / "models" / pack
    destination.parent.mkdir(parents=True, exist_ok=True)
    archive = temp_path(destination.with_suffix(".zip"), "download")
    staging = temp_path(destination, "staging")
    try:
        digest = _download(url, archive, progress, timeout)
        if sha256 is not None and digest != sha256.lower():
            raise BadInput(f"{url}: sha256 {digest} is not the expected {sha256}; nothing was installed")
        files = _unpack(archive, staging)
        tasks = _check_models(staging, pack)
        os.replace(staging, destination)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return Fetched(pack, destination, digest, files, tasks)


def _download(url: str, out: Path, progress: Callable[[int, int], None] | None, timeout: float) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(out, "xb") as handle:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(CHUNK):
                handle.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except OSError as error:  # urllib's URLError and HTTPError are OSErrors
        raise BadInput(f"could not download {url} ({getattr(error, 'reason', error)})") from None
    return digest.hexdigest()


def _unpack(archive: Path, staging: Path) -> tuple[str, ...]:
    """The archive's .onnx files, flattened into `staging`; anything that could escape is refused."""
    try:
        with zipfile.ZipFile(archive) as package:
            members = [m for m in package.infolist() if not m.is_dir()]
            for member in members:
                name = PurePosixPath(member.filename)
                is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
                if name.is_absolute() or ".." in name.parts or is_link:
                    raise BadInput(f"the pack archive holds an unsafe entry '{member.filename}'; nothing was installed")
            staging.mkdir()
            names = []
            for member in members:
                name = PurePosixPath(member.filename).name
                if not name.endswith(".onnx"):
                    continue
                with package.open(member) as source, open(staging / name, "xb") as target:
                    shutil.copyfileobj(source, target, CHUNK)
                names.append(name)
    except zipfile.BadZipFile:
        raise BadInput("the download is not a zip archive; nothing was installed") from None
    if not names:
        raise BadInput("the pack archive holds no .onnx models; nothing was installed")
    return tuple(sorted(names))


def _check_models(folder: Path, pack: str) -> tuple[str, ...]:
    """Every ONNX file must load and be recognised; detection and recognition must be there."""
    from insightface.model_zoo import model_zoo

    tasks = []
    for path in sorted(folder.glob("*.onnx")):
        try:
            model = model_zoo.get_model(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for broken files
            raise BadInput(f"{path.name} in pack '{pack}' does not load ({error}); nothing was installed") from None
        if model is None:
            raise BadInput(f"{path.name} in pack '{pack}' is not a model insightface knows; nothing was installed")
        tasks.append(str(getattr(model, "taskname", "unknown")))
    missing = [t for t in REQUIRED_TASKS if t not in tasks]
    if missing:
        raise BadInput(f"pack '{pack}' has no {', '.join(missing)} model; nothing was installed")
    return tuple(tasks)
