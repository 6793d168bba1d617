"""The shape the design promises: only the output sink writes generated pixels (however a file
spells the write), loading never unpickles, the modules that decide never import the ones that run
models, no module imports itself through others, provenance's rooms import one way, and each
conversion option is declared once."""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
# Calls that encode or write an image or video, by the module that provides them (resolved through
# the file's imports, so `import imageio.v3 as iio` and `from tifffile import imwrite` count too).
ENCODERS = {
    "cv2": {"imwrite", "imencode", "imwritemulti", "imwriteanimation", "VideoWriter"},
    "imageio": {"imwrite", "imsave", "mimwrite", "mimsave", "volwrite", "volsave", "mvolwrite", "get_writer"},
    "tifffile": {"imwrite", "imsave", "TiffWriter"},
    "PIL": {"save"},
    "torchvision": {"save_image", "write_png", "write_jpeg", "write_video", "write_file", "encode_png"},
    "matplotlib": {"imsave", "savefig"},
    "numpy": {"save", "savez", "savez_compressed", "tofile"},
}
# Who may encode images or video outside faceswap/provenance/, and why.
ALLOWED = {
    "faceswap/synthetic.py": "inputs the framework makes for itself (demo subjects, test and bench clips)",
    "faceswap/data/faceset.py": "aligned crops cut from a consenting subject's own footage: inputs, not outputs",
    "scripts/bench_watermark.py": "measures the mark under re-encoding attacks; its files stay in bench-results/",
    "scripts/bench_credentials.py": "times C2PA signing on files it made itself, no model involved",
    "scripts/bench_keyed_marks.py": "attacks marked pictures by JPEG in memory; its clips stay in a temporary folder",
    "scripts/bench_tlog.py": "weighs the transparency proof in the manifest of a noise PNG it made itself",
    "scripts/calibrate_identity.py": "JPEG-compresses package photos in memory to test identity matching",
    "scripts/bench_pictures.py": "JPEG copies, in memory, of the package photos the watermark benches mark",
    "scripts/bench_hostile_inputs.py": "makes the hostile and the largest honest files verify is measured on",
    "faceswap/serve/frames.py": "a small JPEG of the uploaded file's own frame, made in memory for the answer",
    "scripts/bench_training_fidelity.py": "caches held-out crops it renders of the synthetic demo subjects: inputs",
    "scripts/bench_model_mark.py": "plays someone running a copied model without the sink, to measure the model's "
    "own mark; its renders stay in memory and a temporary folder",
}
# Who may write raw bytes (binary open, os.write, write_bytes) outside faceswap/provenance/, and what
# bytes they are: image bytes written that way would bypass the sink as surely as cv2.imwrite.
BYTE_WRITERS = {
    "faceswap/atomic.py": "the temp-file-and-rename every file goes through; it writes what a caller encoded",
    "faceswap/serve/upload.py": "the stranger's upload as it arrives, to be verified: an input, never ours",
    "faceswap/faces/fetch.py": "face-model packs downloaded and checked against their published hashes",
    "scripts/bench_credentials.py": "times C2PA signing on files it made itself, no model involved",
    "scripts/bench_hostile_inputs.py": "makes the hostile and the largest honest files verify is measured on",
}
# Who may open image, EXR or video files for reading, and why: every other module reads through these,
# so no file is decoded before its header is checked against the caller's limits (faceswap/limits.py).
READS_MEDIA = re.compile(r"cv2\.imread|cv2\.imdecode|OpenEXR\.File\(|av\.open\(|np\.fromfile|Image\.open\(")
READERS = {
    "faceswap/media.py": "images, EXR, sequences and videos, each checked against InputLimits first",
    "faceswap/image_header.py": "reads headers only (EXR's through OpenEXR's header-only read)",
    "faceswap/sampling.py": "verify's sampled frames, after probe_video checked the file",
    "faceswap/convert/dub_audio.py": "audio tracks, their duration checked as declared and as decoded",
    "faceswap/data/faceset.py": "crops whose hash the index names, sized from their header first",
    "faceswap/provenance/output/writers.py": "writes outputs; re-opens a source already probed for its audio",
    "faceswap/synthetic.py": "writes inputs the framework makes for itself",
    "faceswap/serve/check.py": "reads headers only (Pillow, OpenEXR's header-only read) for the page's stricter limits",
    "faceswap/provenance/output/readback.py": "the sink's read-back of the video it has just written itself",
}


def _python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _import_names(tree: ast.AST) -> dict[str, str]:
    """Each name a file binds by importing, and the dotted name it stands for."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _called(func: ast.expr, names: dict[str, str]) -> str | None:
    """The dotted name a call resolves to through the imports (`iio.imwrite` -> `imageio.v3.imwrite`),
    or None when its receiver is a value (`image.save`)."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.insert(0, func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    root = names.get(func.id, "builtins." + func.id if not parts else None)
    return ".".join([root, *parts]) if root else None


def _mode(call: ast.Call, position: int) -> str | None:
    """The file mode a call passes (positionally at `position`, or as `mode=`); "?" when not a literal."""
    given = [k.value for k in call.keywords if k.arg == "mode"] or call.args[position : position + 1]
    if not given:
        return None
    return given[0].value if isinstance(given[0], ast.Constant) and isinstance(given[0].value, str) else "?"


def _writes_bytes(mode: str | None) -> bool:
    return mode is not None and (mode == "?" or ("b" in mode and any(c in mode for c in "wax+")))


TEMPORARY_FILES = {f"tempfile.{kind}" for kind in ("NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile")}


def _classify(call: ast.Call, names: dict[str, str], uses_pil: bool) -> str | None:
    """Whether a call encodes or writes an image or video ("encodes"), writes raw bytes ("bytes"), or neither."""
    name = _called(call.func, names)
    method = call.func.attr if isinstance(call.func, ast.Attribute) else None
    if name is not None and name.split(".")[-1] in ENCODERS.get(name.split(".")[0], ()):
        return "encodes"
    if name in ("av.open", "imageio.imopen", "imageio.v3.imopen"):
        mode = _mode(call, 1) or "r"
        return "encodes" if "w" in mode or mode == "?" else None
    if (
        method == "add_stream"
        or (name is None and method == "tofile")
        or (name is None and method == "save" and uses_pil)
    ):
        return "encodes"
    if name in ("builtins.open", "io.open", "os.fdopen"):
        return "bytes" if _writes_bytes(_mode(call, 1)) else None
    if name in TEMPORARY_FILES:  # binary ("w+b") unless a text mode is given
        return "bytes" if _writes_bytes(_mode(call, 0) or "w+b") else None
    if name == "os.write" or method == "write_bytes":
        return "bytes"
    if name is None and method == "open" and _mode(call, 0) != "?" and _writes_bytes(_mode(call, 0)):
        return "bytes"  # Path.open; a non-literal first argument is a member name (zipfile, tarfile)
    return None


def _image_writes(source: str) -> list[tuple[int, str, str]]:
    """(line, "encodes" | "bytes", the call's first line) for every write the rule knows of. The
    file's syntax tree is read, so a call split across lines or renamed on import still counts. What
    it cannot see: a PIL image saved in a file that imports no PIL (it got the image from elsewhere)."""
    tree = ast.parse(source)
    names = _import_names(tree)
    uses_pil = any(target.split(".")[0] == "PIL" for target in names.values())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            kind = _classify(node, names, uses_pil)
            if kind is not None:
                found.append((node.lineno, kind, (ast.get_source_segment(source, node) or "").splitlines()[0]))
    return sorted(found)


def test_the_writer_rule_sees_every_way_of_writing_image_bytes():
    written = {
        "import cv2\ncv2.imwrite(\n    path,\n    frame,\n)\n": "encodes",
        "from cv2 import imencode as enc\nenc('.png', frame)\n": "encodes",
        "from PIL import Image\nImage.fromarray(frame).save(path)\n": "encodes",
        "from PIL import Image\npicture = Image.fromarray(frame)\npicture.save(\n    buf, format='PNG'\n)\n": "encodes",
        "import imageio.v3 as iio\niio.imwrite(path, frame)\n": "encodes",
        "import imageio\nimageio.mimwrite(path, frames)\n": "encodes",
        "from tifffile import imwrite\nimwrite(path, frame)\n": "encodes",
        "import tifffile\nwith tifffile.TiffWriter(path) as tif:\n    tif.write(frame)\n": "encodes",
        "import av\nav.open(\n    path,\n    'w',\n)\n": "encodes",
        "import av\nav.open(path, mode='w')\n": "encodes",
        "import av\nav.open(path, mode)\n": "encodes",
        "import imageio.v3 as iio\nwith iio.imopen(path, 'w') as out:\n    out.write(frame)\n": "encodes",
        "import tempfile\ntempfile.NamedTemporaryFile(suffix='.png').write(png)\n": "bytes",
        "import numpy as np\nnp.save(path, frame)\n": "encodes",
        "frame.tofile(path)\n": "encodes",
        "with open(\n    path,\n    'wb',\n) as f:\n    f.write(png)\n": "bytes",
        "with open(path, mode='xb') as f:\n    f.write(png)\n": "bytes",
        "import os\nos.fdopen(fd, 'wb')\n": "bytes",
        "import os\nos.write(fd, png)\n": "bytes",
        "path.write_bytes(png)\n": "bytes",
        "path.open('ab').write(png)\n": "bytes",
        "open(path, mode).write(png)\n": "bytes",
    }
    for source, kind in written.items():
        assert [k for _, k, _ in _image_writes(source)] == [kind], source
    reads = [
        "import av\nav.open(path)\n",
        "import tempfile\ntempfile.NamedTemporaryFile('w', suffix='.json')\n",
        "open(path, 'rb').read()\n",
        "path.write_text(text)\n",
        "import torch\ntorch.save(state, buffer)\n",
        "index.save()\n",  # not a PIL image: the file imports no PIL
        "with package.open(member) as source:\n    pass\n",
        "import cv2\ncv2.imdecode(data, 1)\n",
    ]
    for source in reads:
        assert _image_writes(source) == [], source


def test_only_the_sink_writes_generated_pixels():
    offenders = []
    for path in _python_files("faceswap") + _python_files("scripts"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("faceswap/provenance/"):
            continue
        for number, kind, call in _image_writes(path.read_text()):
            if relative not in (ALLOWED if kind == "encodes" else BYTE_WRITERS):
                offenders.append(f"{relative}:{number}: {call}")
    assert offenders == [], "write generated pixels through faceswap.provenance.output.sink:\n" + "\n".join(offenders)


def test_media_is_read_only_through_the_bounded_readers():
    offenders = []
    for path in _python_files("faceswap"):
        relative = path.relative_to(ROOT).as_posix()
        if relative in READERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if READS_MEDIA.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == [], "read media through faceswap.media (limits checked first):\n" + "\n".join(offenders)


def test_nothing_loads_a_pickle():
    unsafe = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|dill\.load|joblib\.load")
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _python_files("faceswap")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert offenders == []


# Import cycles that stay, and why: each names the modules of one cycle (none do now).
CYCLES_ALLOWED: dict[tuple[str, ...], str] = {}


def _module_names() -> dict[str, Path]:
    modules = {}
    for path in _python_files("faceswap"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The faceswap modules `name` imports anywhere in its file (inside functions and TYPE_CHECKING
    too: a cycle of names is a cycle of design, whenever it is executed)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in modules else module)
    return {target for target in found if target in modules and target != name}


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected groups of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, successors = work[-1]
            following = next(successors, None)
            if following is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(group) > 1:
                        groups.append(tuple(sorted(group)))
            elif following not in index:
                index[following] = low[following] = len(index)
                stack.append(following)
                work.append((following, iter(sorted(graph[following]))))
            elif following in stack:
                low[node] = min(low[node], index[following])
    return groups


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [("a", "b", "c"), ("e", "e2")]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_imports_itself_through_others():
    """No import cycle in faceswap/, inside a package or across packages: each module can be read,
    tested and moved after the ones it needs."""
    modules = _module_names()
    graph = {name: _imported_modules(name, path, modules) for name, path in modules.items()}
    assert graph["faceswap.convert.pipeline"] >= {"faceswap.convert.delivery"}  # the graph sees imports
    cycles = [cycle for cycle in _cycles(graph) if cycle not in CYCLES_ALLOWED]
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(cycle) for cycle in cycles)
    assert set(CYCLES_ALLOWED) <= set(_cycles(graph)), "an allowed cycle is gone: remove it from CYCLES_ALLOWED"


# provenance/'s rooms and the rooms each may import. "shared" is a module at provenance/'s top level
# (binding.py, phash.py): used by both output and verify, so it imports neither.
ROOMS_MAY_IMPORT: dict[str, frozenset[str]] = {
    "watermark": frozenset(),
    "credentials": frozenset({"watermark", "shared"}),
    "shared": frozenset({"watermark", "credentials"}),
    "output": frozenset({"watermark", "credentials", "shared"}),
    "verify": frozenset({"watermark", "credentials", "shared"}),
}


def _room(module: str) -> str | None:
    """The room of a module under faceswap.provenance, "shared" for one at its top level, None elsewhere."""
    prefix = "faceswap.provenance."
    if not module.startswith(prefix):
        return None
    first = module[len(prefix) :].split(".")[0]
    return first if first in ROOMS_MAY_IMPORT and first != "shared" else "shared"


def _room_violations(graph: dict[str, set[str]]) -> list[str]:
    """Each import in `graph` from one provenance room into a room it may not import."""
    found = []
    for module, imported in sorted(graph.items()):
        room = _room(module)
        for target in sorted(imported):
            other = _room(target)
            if room is not None and other is not None and other != room and other not in ROOMS_MAY_IMPORT[room]:
                found.append(f"{module} ({room}) imports {target} ({other})")
    return found


def test_the_room_rule_sees_an_import_against_the_flow():
    graph = {
        "faceswap.convert.pipeline": {"faceswap.provenance.output.sink", "faceswap.provenance.verify.verifier"},
        "faceswap.provenance.binding": {"faceswap.provenance.watermark.tiles", "faceswap.provenance.output.writers"},
        "faceswap.provenance.output.sink": {"faceswap.provenance.binding", "faceswap.provenance.verify.verifier"},
        "faceswap.provenance.verify.verifier": {"faceswap.provenance.watermark.marker", "faceswap.provenance.phash"},
        "faceswap.provenance.watermark.tiles": {"faceswap.provenance.watermark.lattice", "faceswap.provenance.binding"},
    }
    assert _room_violations(graph) == [
        "faceswap.provenance.binding (shared) imports faceswap.provenance.output.writers (output)",
        "faceswap.provenance.output.sink (output) imports faceswap.provenance.verify.verifier (verify)",
        "faceswap.provenance.watermark.tiles (watermark) imports faceswap.provenance.binding (shared)",
    ]


def test_provenance_rooms_import_one_way():
    """watermark imports no other room; credentials and the shared modules import neither output nor
    verify; output and verify never import each other. The sink and the verifier read the mark with
    the same code, and each can change without the other."""
    modules = _module_names()
    graph = {name: _imported_modules(name, path, modules) for name, path in modules.items()}
    assert {_room(name) for name in modules} >= set(ROOMS_MAY_IMPORT)  # every room is there to check
    assert graph["faceswap.provenance.output.sink"] >= {"faceswap.provenance.watermark.marker"}  # imports seen
    violations = _room_violations(graph)
    assert violations == [], "provenance rooms import one way:\n" + "\n".join(violations)


# Private members of other libraries' objects that faceswap names, and why.
PRIVATE_REACH_ALLOWED = {
    "argparse._ArgumentGroup": "the type of an argument group, which argparse exposes under no public name",
}


def _private_reaches(source: str) -> list[tuple[int, str]]:
    """Each `x._name` in `source` whose `x` is not `self` or `cls`: a reach into another object's
    private members (dunders are public protocol)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_private_rule_sees_a_reach_into_another_object():
    code = "class A:\n    def f(self, other):\n        return self._x, other._x, other.swapper._infer, self.__dict__\n"
    assert [text for _, text in _private_reaches(code)] == ["other._x", "other.swapper._infer"]


def test_no_module_reaches_into_another_objects_private_members():
    """A private member is used only by its own class: conversion and dubbing share the model's
    network through FaceRenderer.render, not through a Swapper's or a model's private members."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {text}"
        for path in _python_files("faceswap")
        for line, text in _private_reaches(path.read_text())
        if text not in PRIVATE_REACH_ALLOWED
    ]
    assert offenders == []


def test_torch_load_is_always_weights_only():
    for path in _python_files("faceswap"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load":
                owner = getattr(node.func.value, "id", None)
                if owner == "torch":
                    keywords = {k.arg: k.value for k in node.keywords}
                    assert "weights_only" in keywords, f"{path}:{node.lineno}: torch.load without weights_only=True"
                    assert getattr(keywords["weights_only"], "value", None) is True, f"{path}:{node.lineno}"


def test_verify_and_conversion_imports_stay_light():
    """verify never imports torch; loading a model (or an occlusion segmenter) for conversion never
    imports Lightning."""
    code = (
        "import sys\n"
        "import faceswap.cli, faceswap.provenance.verify.verifier, faceswap.serve.app, faceswap.serve.routes\n"
        "assert 'torch' not in sys.modules, 'verify or serve imported torch'\n"
        "import faceswap.convert.model_io, faceswap.model.weights, faceswap.convert.pipeline\n"
        "import faceswap.convert.dub, faceswap.model.occlusion\n"
        "assert 'pytorch_lightning' not in sys.modules, 'conversion (or its occlusion segmenter) imported Lightning'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_function_in_the_package_runs_past_sixty_lines():
    long = []
    for path in _python_files("faceswap"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert long == []


def test_the_public_tiles_key_marks_nothing():
    """The tiles key written in the source is named only where older files are read: every mark that
    credits an entry is made with a key derived from the workspace's secret (ledger/watermark_keys.py)."""
    allowed = {"faceswap/provenance/watermark/tiles.py", "faceswap/provenance/watermark/marker.py"}
    offenders = [
        f"{path.relative_to(ROOT).as_posix()}:{number}"
        for path in _python_files("faceswap")
        if path.relative_to(ROOT).as_posix() not in allowed
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"tiles\.KEY\b|import[^\n]*\bKEY\b", line)
    ]
    assert offenders == []


def test_the_verification_page_never_writes_to_the_workspace():
    """`faceswap serve` reads the ledger: it opens it read-only and never reaches the writers."""
    writers = re.compile(
        r"open_ledger\((?![^)]*writable=False)|ConsentStore|\.append\(\s*\"|write_atomic|write_temp|ensure_secret"
    )
    offenders = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in _python_files("faceswap/serve")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if writers.search(line)
    ]
    assert offenders == []


def test_security_md_names_only_tests_that_exist():
    """Each promise in SECURITY.md names the tests that prove it: every one named must exist."""
    cited = re.compile(r"`(test_[a-z0-9_]+\.py)?(?:::)?([A-Za-z0-9_]+)?(?:\[[^\]]*\])?`")
    missing = []
    for row in (ROOT / "SECURITY.md").read_text().splitlines():
        current = None
        for match in cited.finditer(row):
            file, name = match.groups()
            if file:
                current = ROOT / "tests" / file
                if not current.exists():
                    missing.append(file)
            if name and name.startswith("test_") and current is not None and name != current.stem:
                if current.exists() and f"def {name}(" not in current.read_text():
                    missing.append(f"{current.name}::{name}")
    assert missing == []


# What convert, dub, convert-batch and eval take besides their options: what a run reads and writes
# (or, for the batch, how it is spread), never a setting of the conversion, so no options field,
# CSV column or ledger setting of their own. Everything else they take is an option, declared in
# faceswap/convert/options.py alone.
OPERANDS = {
    "convert": {"--model", "--input", "--output"},
    "dub": {"--model", "--plate", "--performance", "--output"},
    "convert-batch": {"shots", "--ray", "--workers"},
    "eval": {
        "--model",
        "--input",
        "--output",
        "--truth",
        "--every",
        "--compare-smoothing",
        "--dub",
        "--plate",
        "--performance",
        "--plate-truth",
        "--performance-truth",
    },
}
OPTIONS_MODULE = "faceswap/convert/options.py"


def _declarations_elsewhere(source: str, flags: set[str]) -> list[tuple[int, str]]:
    """(line, flag) for every `add_argument` call in `source` that spells one of `flags`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and arg.value in flags:
                    found.append((node.lineno, arg.value))
    return found


def _own_flags(command: str) -> set[str]:
    """The flags `command`'s parser takes that none of the shared parents (workspace, json, limits) adds."""
    from faceswap.cli import _parents, build_parser

    parents = _parents()
    shared = {
        s
        for parent in (parents.workspace, parents.json, parents.limits)
        for a in parent._actions
        for s in a.option_strings
    }
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    taken = {a.option_strings[0] if a.option_strings else a.dest for a in sub.choices[command]._actions}
    return taken - shared - {"-h"}


def test_the_option_rule_sees_a_flag_declared_twice():
    old_dub = 'dub.add_argument("--blur", type=float, default=0.03)\ndub.add_argument(\n    "--region",\n)\n'
    assert _declarations_elsewhere(old_dub, {"--blur", "--region"}) == [(1, "--blur"), (2, "--region")]
    assert _declarations_elsewhere('ev.add_argument("--every", type=int)\n', {"--blur"}) == []


def test_each_option_of_convert_dub_and_batch_is_declared_once_in_the_options_module():
    """A flag of convert, dub, convert-batch or eval is an operand or comes from the options module;
    no `add_argument` anywhere else in the package spells one of those options."""
    from faceswap.convert import options

    declared = {
        "convert": options.flags(options.CONVERT),
        "dub": options.flags(options.DUB),
        "convert-batch": set(),  # its options are the CSV's columns, options.columns()
        "eval": options.flags(options.EVAL) | options.flags(options.EVAL_DUB),
    }
    for command, operands in OPERANDS.items():
        assert _own_flags(command) - operands == declared[command], command
    everywhere = {o.flag for o in options.OPTIONS}
    offenders = [
        f"{path.relative_to(ROOT).as_posix()}:{line}: {flag}"
        for path in _python_files("faceswap")
        if path.relative_to(ROOT).as_posix() != OPTIONS_MODULE
        for line, flag in _declarations_elsewhere(path.read_text(), everywhere)
    ]
    assert offenders == [], "declare options in faceswap/convert/options.py:\n" + "\n".join(offenders)


# cli.py's handlers that may still run past HANDLER_LINES, each with why; none does today. A handler
# that does more than read its args, call one library function and print what it returns grows: move
# the work next to the report it makes instead of listing it here.
LONG_HANDLERS: dict[str, str] = {}
HANDLER_LINES = 15


def test_each_cli_handler_reads_args_calls_one_function_and_prints():
    tree = ast.parse((ROOT / "faceswap" / "cli.py").read_text())
    handlers = {
        node.name: node.end_lineno - node.lineno + 1
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_")
    }
    long = {name: lines for name, lines in handlers.items() if lines > HANDLER_LINES and name not in LONG_HANDLERS}
    assert long == {}, f"cmd_* handlers over {HANDLER_LINES} lines: {long}"
    assert set(LONG_HANDLERS) <= set(handlers), "the allow-list names a handler cli.py no longer has"
