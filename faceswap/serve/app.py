"""The verification page and its JSON API (FastAPI on uvicorn, one process, the workspace's ledger
read-only).

Routes: GET / (the page), POST /verify (the page's form: the answer as a page), POST /api/verify (the
same answer as JSON), GET|POST /consent/RECORD_ID and GET /api/consent/RECORD_ID (a subject's own
status), GET /healthz. Every upload lives in its own temporary folder, removed once its answer is
made, whatever happened; the page loads nothing from anywhere else (docs/serve.md)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from faceswap.serve.check import Answer, Checker, LedgerSource
from faceswap.serve.config import ServeConfig
from faceswap.serve.pool import CheckPool
from faceswap.serve.upload import receive

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """Plain ASGI middleware (request bodies pass through untouched, still streamed)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive_: Any, send: Any) -> None:
        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                message["headers"] = headers + [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
            await send(message)

        await self.app(scope, receive_, with_headers if scope["type"] == "http" else send)


class Service:
    """What the routes share: the limits, the ledger, the checker and the worker pool."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.ledger = LedgerSource(config.workspace)
        self.checker = Checker(config, self.ledger)
        self.pool = CheckPool(config.workers, config.queue)

    async def answer(self, request: Any) -> Answer:
        """Receive, check on a worker, answer; the upload's folder is removed in every case (after
        the worker is done with it, should the request be cancelled first)."""
        with self.pool.slot():
            folder = Path(tempfile.mkdtemp(prefix="faceswap-upload-", dir=self.config.tmp_root))
            job: asyncio.Future[Any] | None = None
            try:
                upload = await receive(request, self.config, folder)
                job = self.pool.submit(lambda: self.checker.check(upload))
                return await asyncio.shield(job)
            finally:
                _remove_when_done(folder, job)

    def consent_secret(self) -> bytes | None:
        from faceswap.consent.access import read_secret

        return read_secret(self.config.workspace.keys_dir)


def _remove_when_done(folder: Path, job: asyncio.Future[Any] | None) -> None:
    def remove(done: asyncio.Future[Any] | None = None) -> None:
        if done is not None and not done.cancelled():
            done.exception()  # retrieved: its error was answered already, or nobody is waiting
        shutil.rmtree(folder, ignore_errors=True)

    if job is None or job.done():
        remove(job)
    else:
        job.add_done_callback(remove)


def create_app(config: ServeConfig) -> Any:
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from faceswap.serve.routes import add_consent_routes, add_verify_routes

    service = Service(config)

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        service.pool.close()

    app = FastAPI(title="faceswap verify", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.service = service
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    add_verify_routes(app, service)
    add_consent_routes(app, service)
    app.add_middleware(SecurityHeaders)
    return app


def run(config: ServeConfig) -> None:
    """Serve until interrupted: one process; checks run on its worker threads."""
    import sys

    import uvicorn

    app = create_app(config)
    ledger = "its ledger" if app.state.service.ledger.present else "no ledger (marks are read, not traced)"
    print(
        f"faceswap serve: http://{config.host}:{config.port}/ (workspace {config.workspace.root}, {ledger}; "
        f"{config.workers} checks at once, {config.queue} waiting; uploads up to {config.max_upload_label})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=config.host, port=config.port, access_log=config.access_log, log_level="warning")
