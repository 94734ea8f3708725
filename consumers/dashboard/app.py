"""The dashboard's web app: one page, a few read-only JSON endpoints, and the live stream.

    GET /                     the page (static/index.html, its script and style sheet)
    GET /api/readings         newest readings: ?limit=&camera=&status=ok|error&q=PLATE (with
                              PLATE_OCR_HISTORY_DSN, q searches the PostgreSQL history)
    GET /api/events           newest vehicle events: ?limit=
    GET /api/alerts           newest watch-list alerts: ?limit=; /api/alerts/stream (SSE)
    GET /api/stats            queue depth, RQ registries, live workers, counts per camera/code
    GET /api/crop/{job_id}    the crop of a reading while Redis still holds it (see crop.py)
    GET /api/stream           server-sent events after ?cursor= or Last-Event-ID

Nothing here writes to Redis or runs a job. With `settings.dashboard_token` set, every request
must carry it: `Authorization: Bearer TOKEN`, or once as `/?token=TOKEN`, which trades it for an
HttpOnly cookie so that the page's own requests (EventSource cannot set headers) carry it too.
Without a token it answers only requests addressed to a loopback name (Host: 127.0.0.1,
localhost, [::1]): otherwise any web site a user opens could rebind its own name to 127.0.0.1
and read the plates through the user's browser (DNS rebinding).
"""

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consumers.dashboard.alerts import alert_messages, newest_alerts, parse_alert_cursor
from consumers.dashboard.crop import CropUnavailable, find_crop
from consumers.dashboard.live import async_connect, sse_messages
from consumers.dashboard.server import is_loopback
from consumers.dashboard.snapshot import Snapshot, parse_cursor
from plate_ocr.connection import DISCONNECT_ERRORS, connect
from plate_ocr.settings import Settings

__all__ = ["COOKIE_NAME", "MAX_LIMIT", "create_app", "static_dir"]

COOKIE_NAME = "plate_ocr_dashboard"
MAX_LIMIT = 1000  # readings or events in one answer
_DEFAULT_LIMIT = 200
_STATUSES = ("ok", "error")
# The page loads nothing from elsewhere and runs no inline script.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def static_dir() -> Path:
    return Path(__file__).with_name("static")


def _limit(request: Request) -> int:
    try:
        value = int(request.query_params.get("limit", _DEFAULT_LIMIT))
    except ValueError:
        value = _DEFAULT_LIMIT
    return max(1, min(value, MAX_LIMIT))


def create_app(
    settings: Settings,
    *,
    connection: "redis.Redis | None" = None,
    stream_idle_timeout_s: float | None = None,
) -> ASGIApp:
    """The dashboard for `settings`. `stream_idle_timeout_s` ends a quiet stream (for tests)."""
    sync_redis = (
        connection
        if connection is not None
        else connect(settings, client_name="plate-ocr-dashboard")
    )
    snapshot = Snapshot(settings, sync_redis)
    history = _history(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Made inside the server's event loop: asyncio connections belong to the loop that
        # opened them.
        app.state.live_redis = async_connect(settings)
        try:
            yield
        finally:
            await app.state.live_redis.aclose()

    def index(request: Request) -> Response:
        return FileResponse(static_dir() / "index.html", headers={"cache-control": "no-cache"})

    def readings(request: Request) -> Response:
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in _STATUSES:
            return JSONResponse({"error": f"status is one of {_STATUSES}"}, status_code=400)
        newest = snapshot.newest_ids()  # before the scan: the stream resumes with no gap
        query = params.get("q") or None
        if query and history is not None:
            # The history (plate-ocr store) holds months, the stream only its newest entries.
            hits = history.find(query, camera=params.get("camera"), limit=_limit(request))
            views = [
                {"entry_id": f"h:{h['reading']['reading_id']}", **h}
                for h in hits
                if status is None or h["reading"]["status"] == status
            ]
            cursor = "/".join(newest)
            return JSONResponse(
                {"readings": views, "scanned": None, "cursor": cursor, "source": "history"}
            )
        found, scanned = snapshot.readings(
            limit=_limit(request),
            camera=params.get("camera"),
            status=status,
            query=params.get("q") or None,
        )
        return JSONResponse({"readings": found, "scanned": scanned, "cursor": "/".join(newest)})

    def events(request: Request) -> Response:
        return JSONResponse({"events": snapshot.events(limit=_limit(request))})

    def alerts(request: Request) -> Response:
        return JSONResponse(newest_alerts(sync_redis, settings, _limit(request)))

    async def alerts_stream(request: Request) -> Response:
        given = request.headers.get("last-event-id") or request.query_params.get("cursor")
        cursor = parse_alert_cursor(given)
        if cursor is None:
            if given:
                return JSONResponse({"error": "cursor is an alerts stream id"}, status_code=400)
            newest = await request.app.state.live_redis.xrevrange(settings.alerts_stream, count=1)
            cursor = newest[0][0].decode() if newest else "0-0"
        messages = alert_messages(
            request.app.state.live_redis, settings, cursor, idle_timeout_s=stream_idle_timeout_s
        )
        return StreamingResponse(
            messages,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    def stats(request: Request) -> Response:
        return JSONResponse(snapshot.stats())

    def crop(request: Request) -> Response:
        try:
            found = find_crop(
                sync_redis, request.path_params["job_id"], max_bytes=settings.max_image_bytes
            )
        except CropUnavailable as e:
            return JSONResponse({"error": e.reason}, status_code=404)
        # A job id's crop never changes, so the browser may keep it.
        return Response(
            found.data,
            media_type=found.media_type,
            headers={"cache-control": "private, max-age=3600"},
        )

    async def stream(request: Request) -> Response:
        given = request.headers.get("last-event-id") or request.query_params.get("cursor")
        cursor = parse_cursor(given)
        if cursor is None:
            if given:
                return JSONResponse({"error": "cursor is READINGS_ID/EVENTS_ID"}, status_code=400)
            cursor = await _newest(request.app.state.live_redis, settings)
        messages = sse_messages(
            request.app.state.live_redis,
            settings,
            cursor,
            idle_timeout_s=stream_idle_timeout_s,
        )
        return StreamingResponse(
            messages,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/readings", readings),
            Route("/api/events", events),
            Route("/api/stats", stats),
            Route("/api/alerts", alerts),
            Route("/api/alerts/stream", alerts_stream),
            Route("/api/crop/{job_id}", crop),
            Route("/api/stream", stream),
            Mount("/static", StaticFiles(directory=static_dir()), name="static"),
        ],
        lifespan=lifespan,
        exception_handlers=dict.fromkeys(DISCONNECT_ERRORS, _redis_unreachable),
    )
    token = settings.dashboard_token
    return _Guard(app, token.get_secret_value() if token is not None else None)


def _history(settings: Settings) -> Any:
    """The history search when PLATE_OCR_HISTORY_DSN is set (psycopg, the [history] extra)."""
    if settings.history_dsn is None:
        return None
    from consumers.history.search import History

    return History(settings.history_dsn.get_secret_value())


async def _redis_unreachable(request: Request, exc: Exception) -> Response:
    # The page says so and retries; a 500 with a traceback would say nothing more.
    return JSONResponse({"error": f"Redis is unreachable: {exc}"}, status_code=503)


async def _newest(connection: Any, settings: Settings) -> tuple[str, str]:
    ids = []
    for name in (settings.results_stream, settings.events_stream):
        newest = await connection.xrevrange(name, count=1)
        ids.append(newest[0][0].decode() if newest else "0-0")
    return ids[0], ids[1]


class _Guard:
    """Adds the security headers to every answer, and refuses what the token (or, without one,
    the loopback rule) does not allow."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        answer = self._instead(Request(scope))
        await (answer or self.app)(scope, receive, send_with_headers)

    def _instead(self, request: Request) -> Response | None:
        """The answer to give instead of the app's, if any."""
        if self.token is None:
            if is_loopback(request.url.hostname or ""):
                return None
            message = "without a dashboard token, open it as http://127.0.0.1:PORT/"
            return PlainTextResponse(message, status_code=421)
        if self._matches(request.query_params.get("token")):
            # Trade the token in the address for a cookie, and drop it from the address bar.
            redirect = RedirectResponse(request.url.remove_query_params("token"), 303)
            redirect.set_cookie(COOKIE_NAME, self.token, httponly=True, samesite="strict")
            return redirect
        if self._matches(_bearer(request)) or self._matches(request.cookies.get(COOKIE_NAME)):
            return None
        return PlainTextResponse("a dashboard token is required", status_code=401)

    def _matches(self, given: str | None) -> bool:
        assert self.token is not None
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value if scheme.lower() == "bearer" and value else None
