"""The web console's static files, sent with headers that confine the page.

The console holds a bearer token in memory and renders cluster data (names,
labels, log lines) that anyone able to create objects controls. The policy
lets the page run only its own script and style files and talk only to its
own origin, so markup that slipped past escaping cannot run or exfiltrate;
no other site may frame it (clickjacking a Delete button), and no URL of it
leaks through a Referer.
"""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DIRECTORY = Path(__file__).parent / "ui"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        # Same-origin fetch and (in current browsers) same-origin ws(s).
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)


class ConsoleFiles:
    """StaticFiles for the console's directory, every response with HEADERS."""

    def __init__(self, directory: Path = DIRECTORY) -> None:
        self._files: ASGIApp = StaticFiles(directory=directory, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in names]
                message = {**message, "headers": [*kept, *HEADERS]}
            await send(message)

        await self._files(scope, receive, send_with_headers)
