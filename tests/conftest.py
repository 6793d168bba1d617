from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from faceswap.faces.samples import insightface_t1, insightface_tom_hanks, skimage_astronaut  # noqa: E402
from faceswap.media import read_image  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def isolated_state_dir(tmp_path_factory):
    """The ledger witness lives outside workspaces, in the user's state folder: tests get their own
    (subprocesses inherit it through the environment)."""
    import os

    from faceswap.workspace import STATE_ENV

    previous = os.environ.get(STATE_ENV)
    os.environ[STATE_ENV] = str(tmp_path_factory.mktemp("state"))
    yield Path(os.environ[STATE_ENV])
    if previous is None:
        os.environ.pop(STATE_ENV, None)
    else:
        os.environ[STATE_ENV] = previous


@pytest.fixture(scope="session", autouse=True)
def reproducible_secrets():
    """Workspace watermark secrets and output tokens are drawn from the running test's name instead
    of the OS, in this process: a check whose margin depends on the draw (a mark read back after a
    denoiser, a crop) then fails on every run or on none, and a failure repeats where it can be read.
    How the mark fares over fresh secrets and tokens is the benches' measure (docs/watermark.md).
    Subprocesses (the CLI run as a program, Ray workers) still draw from the OS."""
    import hashlib
    import os

    import faceswap.convert.pipeline
    import faceswap.provenance.output.sink  # noqa: F401  (bind new_token before it is replaced)
    from faceswap.ledger.watermark_keys import SECRET_BYTES, WatermarkKey
    from faceswap.provenance.watermark import marker

    draws: dict[str, int] = {}

    def draw(size: int) -> bytes:
        test = os.environ.get("PYTEST_CURRENT_TEST", "session").rsplit(" (", 1)[0]
        draws[test] = draws.get(test, 0) + 1
        return hashlib.shake_256(f"{test} #{draws[test]}".encode()).digest(size)

    def generate(cls) -> WatermarkKey:
        return cls(draw(SECRET_BYTES))

    def new_token() -> int:
        return int.from_bytes(draw(6), "big") & marker.MAX_TOKEN

    original = marker.new_token
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WatermarkKey, "generate", classmethod(generate))
        for name, module in list(sys.modules.items()):
            if name.startswith("faceswap") and getattr(module, "new_token", None) is original:
                patch.setattr(module, "new_token", new_token)
        yield


@pytest.fixture(scope="session")
def dlib_analyzer():
    from faceswap.faces.analyzer import FaceAnalyzer

    return FaceAnalyzer("dlib")


@pytest.fixture(scope="session")
def t1_image() -> np.ndarray:
    return read_image(insightface_t1())


@pytest.fixture(scope="session")
def astronaut_image() -> np.ndarray:
    return read_image(skimage_astronaut())


@pytest.fixture(scope="session")
def hanks_image() -> np.ndarray:
    import cv2

    # 112 px and tightly cropped: give HOG some context around the face
    return cv2.copyMakeBorder(read_image(insightface_tom_hanks()), 56, 56, 56, 56, cv2.BORDER_REFLECT)


@pytest.fixture(scope="session")
def t1_faces(dlib_analyzer, t1_image):
    return dlib_analyzer.analyze(t1_image)


@pytest.fixture(scope="session")
def tiny_pack_root(tmp_path_factory) -> Path:
    import tiny_onnx

    return tiny_onnx.build_pack(tmp_path_factory.mktemp("insightface"))


@pytest.fixture(scope="session")
def reference_photos(tmp_path_factory) -> dict[str, Path]:
    from consent_helpers import write_reference_photos

    return write_reference_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def registered_template(tmp_path_factory, reference_photos) -> Path:
    """A workspace with two registered subjects: 'astro' and 'hanks' (dlib embeddings)."""
    from consent_helpers import registration, store_at

    root = tmp_path_factory.mktemp("template") / "workspace"
    store = store_at(root)
    store.register(registration("astro", reference_photos["astronaut"], reference_photos["evidence"]))
    store.register(registration("hanks", reference_photos["hanks"], reference_photos["evidence"]))
    return root


def private_copy(template: Path, tmp_path: Path) -> Path:
    """A test's own copy of a session-built workspace, safe to change or tamper with."""
    import shutil

    root = tmp_path / "workspace"
    shutil.copytree(template, root)
    return root


@pytest.fixture
def workspace_root(tmp_path, registered_template) -> Path:
    return private_copy(registered_template, tmp_path)


@pytest.fixture(scope="session")
def demo_subjects(tmp_path_factory):
    """Both synthetic subjects with 3 s clips (75 frames), made once per test session."""
    from faceswap.demo.subjects import make_demo_subjects
    from faceswap.faces.analyzer import FaceAnalyzer

    out = tmp_path_factory.mktemp("demo-subjects")
    files, report = make_demo_subjects(out, FaceAnalyzer("dlib"), seconds=3.0)
    return {f.subject: f for f in files}, report


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory, demo_subjects) -> Path:
    """A workspace with both demo subjects registered (synthetic, all purposes)."""
    from consent_helpers import in_days

    from faceswap.consent.registry import ConsentStore, Registration
    from faceswap.workspace import Workspace

    files, _ = demo_subjects
    root = tmp_path_factory.mktemp("demo-ws") / "workspace"
    store = ConsentStore(Workspace(root))
    evidence = root.parent / "synthetic-consent.txt"
    evidence.write_text("synthetic demo subjects: generated by faceswap, no real person\n")
    for subject, f in files.items():
        store.register(
            Registration(
                subject,
                f"Synthetic {subject}",
                f.references,
                ["vfx-prototyping", "dubbing-research", "evaluation"],
                in_days(365),
                evidence,
                synthetic=True,
                backend="dlib",
            )
        )
    return root


@pytest.fixture
def demo_workspace(tmp_path, demo_template) -> Path:
    return private_copy(demo_template, tmp_path)


@pytest.fixture(scope="session")
def facesets_template(tmp_path_factory, demo_template, demo_subjects) -> Path:
    """The demo workspace with both subjects extracted (every 2nd frame, 128 px crops)."""
    import shutil

    from consent_helpers import store_at

    from faceswap.data.extract import ExtractOptions, extract

    files, _ = demo_subjects
    root = tmp_path_factory.mktemp("facesets-ws") / "workspace"
    shutil.copytree(demo_template, root)
    for subject, f in files.items():
        extract(store_at(root), f.clip, subject, ExtractOptions(every=2, size=128))
    return root


@pytest.fixture
def facesets_workspace(tmp_path, facesets_template) -> Path:
    return private_copy(facesets_template, tmp_path)


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory, facesets_template) -> Path:
    """Facesets plus a briefly trained smoke model 'tiny' (30 steps: fast, not good)."""
    import shutil

    from faceswap.train import TrainRequest, run_training
    from faceswap.workspace import Workspace

    root = tmp_path_factory.mktemp("trained-ws") / "workspace"
    shutil.copytree(facesets_template, root)
    config = Path(__file__).parents[1] / "configs" / "train" / "smoke.yaml"
    run_training(
        TrainRequest(
            Workspace(root),
            config,
            "demo-a",
            "demo-b",
            "evaluation",
            "tiny",
            ["--trainer.max_steps", "30", "--trainer.enable_progress_bar", "false"],
        )
    )
    return root


@pytest.fixture
def trained_workspace(tmp_path, trained_template) -> Path:
    return private_copy(trained_template, tmp_path)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (tests/pg_helpers.py says where it comes from).
    Without one the tests that need it skip, saying why; under CI ($CI set) that is a failure."""
    import os

    from pg_helpers import PostgresUnavailable, start_server

    try:
        server = start_server()
    except PostgresUnavailable as why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {why}")
        pytest.skip(str(why))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A ledger URL of the session's server whose tables land in a fresh schema."""
    return postgres_server.new_schema()
