"""The routes: each answers as a page or as JSON from the same objects; a refusal is its status and
one line, an unexpected failure a 500 and one line (the server's log gets the type, never a page)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse

from faceswap.errors import FaceswapError
from faceswap.serve.media_types import ACCEPTED_LABEL
from faceswap.serve.pages import render
from faceswap.serve.upload import Refusal

LOG = logging.getLogger("faceswap.serve")
INTERNAL = "internal error while checking the file; nothing was kept"


async def _checked(service: Any, request: Any) -> tuple[Any, int, str | None]:
    """(answer, status, refusal reason): the one place that turns failures into a status and a line."""
    from starlette.requests import ClientDisconnect

    try:
        return await service.answer(request), 200, None
    except Refusal as refusal:
        return None, refusal.status, refusal.reason
    except ClientDisconnect:
        return None, 400, "the upload was interrupted"
    except Exception as error:  # noqa: BLE001 - a person gets one line, never a traceback
        LOG.error("check failed: %s: %s", type(error).__name__, " ".join(str(error).split())[:300])
        return None, 500, INTERNAL


def _limits(service: Any) -> dict[str, Any]:
    config = service.config
    return {
        "max_upload": config.max_upload_label,
        "max_upload_bytes": config.max_upload_bytes,
        "accepted": ACCEPTED_LABEL,
        "workers": config.workers,
        "max_image_mp": f"{config.max_image_pixels / 1e6:g}",
        "max_video": f"{config.max_video_pixels / 1e6:.1f} MP per frame, {config.max_video_frames} frames",
        "traced": service.ledger.present,
    }


def add_verify_routes(app: Any, service: Any) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def page() -> Any:
        return HTMLResponse(render("verify.html", limits=_limits(service)))

    @app.post("/verify", response_class=HTMLResponse)
    async def verify_page(request: Request) -> Any:
        answer, status, reason = await _checked(service, request)
        html = render("verify.html", limits=_limits(service), answer=_for_page(answer), error=reason)
        return HTMLResponse(html, status_code=status, headers=_retry(status))

    @app.post("/api/verify")
    async def verify_json(request: Request, frame: str = "1") -> Any:
        answer, status, reason = await _checked(service, request)
        if answer is None:
            return JSONResponse({"error": reason, "status": status}, status_code=status, headers=_retry(status))
        return JSONResponse(answer.to_json(with_frame_image=frame.lower() not in ("0", "false", "no")))

    @app.get("/healthz")
    async def health() -> Any:
        pool = service.pool
        return {"ok": True, "checking": pool.active, "capacity": pool.capacity, "workers": pool.workers}


def _for_page(answer: Any) -> dict[str, Any] | None:
    return None if answer is None else answer.to_json(with_frame_image=True)


def _retry(status: int) -> dict[str, str]:
    return {"retry-after": "30"} if status == 503 else {}


def add_consent_routes(app: Any, service: Any) -> None:
    async def lookup(record_id: str, code: str | None) -> tuple[Any, int, str | None]:
        from faceswap.serve.consent_page import consent_page, is_record_id

        if not is_record_id(record_id):
            return None, 404, "not a consent record id (SUBJECT-YYYYMMDD-XXXXXXXX)"
        try:
            view = await service.pool.submit(service.ledger.view)
            page = consent_page(view, record_id, code, service.consent_secret()) if view is not None else None
        except FaceswapError as error:
            return None, 503, " ".join(str(error).split())
        if page is None:
            return None, 404, "no consent record with this id in this ledger"
        return page, 200, None

    async def html(record_id: str, code: str | None) -> Any:
        page, status, reason = await lookup(record_id, code)
        body = render("consent.html", record_id=record_id, page=page.to_json() if page else None, error=reason)
        return HTMLResponse(body, status_code=status)

    @app.get("/consent/{record_id}", response_class=HTMLResponse)
    async def consent_get(record_id: str, code: str | None = None) -> Any:
        return await html(record_id, code)

    @app.post("/consent/{record_id}", response_class=HTMLResponse)
    async def consent_post(record_id: str, request: Request) -> Any:
        form = await _small_form(request)
        return await html(record_id, form.get("code"))

    @app.post("/consent", response_class=HTMLResponse)
    async def consent_form(request: Request) -> Any:
        form = await _small_form(request)
        return await html(form.get("record_id", "").strip(), form.get("code"))

    @app.get("/api/consent/{record_id}")
    async def consent_json(record_id: str, code: str | None = None) -> Any:
        page, status, reason = await lookup(record_id, code)
        if page is None:
            return JSONResponse({"error": reason, "status": status}, status_code=status)
        return JSONResponse(page.to_json())


async def _small_form(request: Any, limit: int = 4096) -> dict[str, str]:
    """A URL-encoded form of a few fields (the access code), read only up to `limit` bytes."""
    from urllib.parse import parse_qs

    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"))
    return {k: v[0] for k, v in fields.items() if v}
