"""Vendor-shaped error answers and the answers an injected :class:`Fault` gives."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from exporter.simulator.faults import Fault

ErrorBody = Callable[[str, str], dict[str, object]]
"""Builds a vendor's JSON error body from a ``code`` and a ``message``."""

DEFAULT_ERRORS = {
    400: ("bad_request", "Invalid input was provided"),
    401: ("unauthorized", "access is unauthorized"),
    404: ("resource_not_found", "Requested resource does not exist"),
    405: ("method_not_allowed", "Method not allowed for this resource"),
    429: (
        "too_many_requests",
        "Too many requests. Client has exceeded the rate limit for this endpoint.",
    ),
    500: ("server_error", "Server error was encountered"),
    503: ("service_unavailable", "The service is temporarily unavailable"),
}
ERROR_KINDS = {
    "rate_limit": 429,
    "unavailable": 503,
    "server_error": 500,
    "not_found": 404,
    "unauthorized": 401,
}
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n"
    b"<body><h1>Corporate proxy</h1><p>Please sign in to continue.</p></body></html>\n"
)
HUGE_PREFIX = b'{"data": "'
HUGE_SUFFIX = b'"}'
HUGE_CHUNK = 64 * 1024
# What truncated_json cuts when the normal answer has no body to cut (none does today).
TRUNCATED_FALLBACK = b'{"data": {"totalItems": 1, "isCompleted": false}}'


def plain_error(code: str, message: str) -> dict[str, object]:
    """Return the error body most vendors send: ``message`` and ``code``."""
    return {"message": message, "code": code}


def error_response(
    status: int,
    code: str | None = None,
    message: str | None = None,
    *,
    body: ErrorBody = plain_error,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Answer ``status`` with the error ``body`` a vendor sends (default code and message)."""
    default_code, default_message = DEFAULT_ERRORS.get(status, ("error", "Error"))
    content = body(code or default_code, message or default_message)
    return web.json_response(content, status=status, headers=headers)


async def _huge(request: web.Request, size: int) -> web.StreamResponse:
    """Stream ``size`` bytes that start like JSON and never parse usefully."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = size
    await response.prepare(request)
    try:
        if size <= len(HUGE_PREFIX) + len(HUGE_SUFFIX):
            await response.write((HUGE_PREFIX + HUGE_SUFFIX)[:size])
        else:
            await response.write(HUGE_PREFIX)
            left = size - len(HUGE_PREFIX) - len(HUGE_SUFFIX)
            while left > 0:
                chunk = min(left, HUGE_CHUNK)
                await response.write(b"x" * chunk)
                left -= chunk
            await response.write(HUGE_SUFFIX)
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped reading: exactly what a body cap does
    return response


async def fault_response(
    fault: Fault,
    body: ErrorBody,
    request: web.Request,
    normal: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Answer a request ``fault`` hits, errors shaped by ``body``; ``normal`` is the answer."""
    status = ERROR_KINDS.get(fault.kind)
    if status is not None:
        retry = fault.retry_after if fault.kind in ("rate_limit", "unavailable") else None
        return error_response(
            status, body=body, headers=None if retry is None else {"Retry-After": retry}
        )
    if fault.kind == "html":
        return web.Response(status=200, body=HTML_PAGE, content_type="text/html", charset="utf-8")
    if fault.kind == "huge":
        return await _huge(request, fault.body_size)
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
        return await normal()
    # truncated_json: the normal answer's body cut in half, as a 200
    answer = await normal()
    content = answer.body if isinstance(answer, web.Response) else None
    if not isinstance(content, bytes) or not content:
        content = TRUNCATED_FALLBACK
    return web.Response(
        status=200, body=content[: len(content) // 2], content_type="application/json"
    )
