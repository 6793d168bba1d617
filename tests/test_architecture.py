"""The shape the design promises: only the output sink writes generated pixels, loading never
unpickles, and the modules that decide never import the ones that run models."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
WRITES_PIXELS = re.compile(
    r"cv2\.imwrite|cv2\.imencode|\.add_stream\(|av\.open\([^)]*[\"']w|cv2\.VideoWriter|imageio\.(v[23]\.)?(imwrite|mimwrite)"
)
# Who may encode images or video outside faceswap/provenance/, and why.
ALLOWED = {
    "faceswap/synthetic.py": "inputs the framework makes for itself (demo subjects, test and bench clips)",
    "faceswap/data/faceset.py": "aligned crops cut from a consenting subject's own footage: inputs, not outputs",
    "scripts/bench_watermark.py": "measures the mark under re-encoding attacks; its files stay in bench-results/",
    "scripts/bench_credentials.py": "times C2PA signing on files it made itself, no model involved",
    "scripts/bench_tlog.py": "weighs the transparency proof in the manifest of a noise PNG it made itself",
    "scripts/calibrate_identity.py": "JPEG-compresses package photos in memory to test identity matching",
    "faceswap/serve/frames.py": "a small JPEG of the uploaded file's own frame, made in memory for the answer",
}


def _python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_only_the_sink_writes_generated_pixels():
    offenders = []
    for path in _python_files("faceswap") + _python_files("scripts"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("faceswap/provenance/") or relative in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WRITES_PIXELS.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == [], "write generated pixels through faceswap.provenance.sink:\n" + "\n".join(offenders)


def test_nothing_loads_a_pickle():
    unsafe = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|dill\.load|joblib\.load")
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _python_files("faceswap")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if unsafe.search(line)
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
        "import faceswap.cli, faceswap.provenance.verify, faceswap.serve.app, faceswap.serve.routes\n"
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
