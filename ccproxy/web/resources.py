"""The resource tree: C{/v1/messages}, C{count_tokens}, health probes, JSON 404/405.

Every response, including errors for unknown paths and wrong methods, is JSON in the
Anthropic shape and carries a C{request-id} header.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

import ccproxy
from ccproxy import jsonio
from ccproxy.anthropic import MessagesRequest, RequestError
from ccproxy.convert.request import convert_request
from ccproxy.errors import ApiError
from ccproxy.ids import message_id, request_id
from ccproxy.logs import RequestRecord, debug_dump, log_request
from ccproxy.validation import check_depth, parse_count_tokens_request, parse_messages_request
from ccproxy.web.auth import UNAUTHORIZED, client_authorized
from ccproxy.web.context import Context
from ccproxy.web.errors import write_error, write_json
from ccproxy.web.exchange import MessageExchange
from ccproxy.web.passthrough import Passthrough

__all__ = ["Context", "build_root"]

_log = Logger()


def _new_request_id(request: Request) -> str:
    rid = request_id()
    request.setHeader(b"request-id", rid.encode())
    return rid


class JSONResource(Resource):
    """A resource whose failures are Anthropic JSON: 404 for unknown children, 405 for
    methods it does not render."""

    def getChild(self, path: bytes, request: Request) -> Resource:  # noqa: N802
        return NotFound()

    def render(self, request: Request) -> bytes | int:
        method = request.method.decode("latin-1")
        if method == "HEAD":  # answered like GET, without the body
            method = "GET"
        handler = getattr(self, f"render_{method}", None)
        if handler is None:
            allowed = sorted(
                name[len("render_") :] for name in dir(self) if name.startswith("render_") and name not in ("render_", "render_HEAD")
            )
            rid = _new_request_id(request)
            message = f"method {method} is not allowed on {request.path.decode('latin-1', 'replace')}"
            error = ApiError(405, "invalid_request_error", message, {"allow": ", ".join(allowed)})
            write_error(request, error, rid)
            return NOT_DONE_YET
        result: bytes | int = handler(request)
        return result


class NotFound(JSONResource):
    """Any path ccproxy does not serve."""

    isLeaf = True

    def render(self, request: Request) -> int:
        rid = _new_request_id(request)
        path = request.path.decode("latin-1", "replace")
        write_error(request, ApiError(404, "not_found_error", f"no such endpoint: {path}"), rid)
        return NOT_DONE_YET


class Status(JSONResource):
    """C{GET /} and C{GET /health}: liveness and what the proxy talks to (never keys)."""

    isLeaf = True

    def __init__(self, context: Context) -> None:
        super().__init__()
        self._context = context

    def render_GET(self, request: Request) -> int:  # noqa: N802
        _new_request_id(request)
        settings = self._context.settings
        write_json(
            request,
            200,
            {
                "status": "ok",
                "name": "ccproxy",
                "version": ccproxy.__version__,
                "upstream": settings.upstream_host,
                "provider": self._context.profile.name,
                "routing": self._context.router.table(),
                **self._context.stats.as_json(self._context.clock.seconds()),
            },
        )
        return NOT_DONE_YET


class Hello(JSONResource):
    """C{/api/hello}: Claude Code's start-up probe; 200 with an empty body."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        _new_request_id(request)
        request.setHeader(b"content-type", b"application/json")
        return b"" if request.method == b"HEAD" else b"{}"


def _check_media_type(request: Request) -> None:
    """Only uncompressed C{application/json} (or C{*/*+json}) bodies: 415 for the rest.

    Requiring JSON keeps browsers out: a web page can send C{text/plain}, form and
    body-less-type POSTs to 127.0.0.1 without asking (no CORS preflight), but not JSON.
    No Anthropic client compresses requests, and decoding them would need its own
    decompression-bomb cap, so any C{Content-Encoding} is refused.

    @raise ApiError: 415.
    """
    encoding = (request.getHeader(b"content-encoding") or b"identity").strip().lower()
    if encoding != b"identity":
        message = f"Content-Encoding {encoding.decode('latin-1')!r} is not supported: send the body uncompressed"
        raise ApiError(415, "invalid_request_error", message)
    header = request.getHeader(b"content-type") or b""
    media = header.split(b";", 1)[0].strip().lower()
    if media != b"application/json" and not (media.startswith(b"application/") and media.endswith(b"+json")):
        shown = header.decode("latin-1")[:100] or "none"
        raise ApiError(415, "invalid_request_error", f"Content-Type must be application/json (got {shown})")


class ClientRequest(JSONResource):
    """Shared checks for the C{/v1} endpoints: client key, body size, JSON."""

    isLeaf = True

    def __init__(self, context: Context) -> None:
        super().__init__()
        self._context = context

    def _raw(self, request: Request) -> bytes:
        """The body's bytes, read once and let go from the request (not kept for the life of a
        long stream).

        @raise ApiError: not JSON by its type, empty, or too large.
        """
        _check_media_type(request)
        content = request.content
        if content is None:
            raise ApiError(400, "invalid_request_error", "request body is empty")
        content.seek(0, 2)
        size = content.tell()
        limit = self._context.settings.max_request_bytes
        if size > limit:
            raise ApiError(413, "request_too_large", f"request body is {size} bytes; the limit is {limit}")
        content.seek(0)
        raw: bytes = content.read()
        content.close()
        request.content = None
        if not raw.strip():
            raise ApiError(400, "invalid_request_error", "request body is empty")
        return raw

    def decoded(self, raw: bytes) -> Any:
        """The JSON body, within L{ccproxy.validation.MAX_JSON_DEPTH}.

        @raise ApiError: not JSON.
        @raise RequestError: too deep.
        """
        try:
            body = jsonio.loads(raw)
        except (ValueError, RecursionError) as error:
            raise ApiError(400, "invalid_request_error", f"request body is not valid JSON: {error}") from None
        self.check_depth(body)
        return body

    def check_depth(self, body: Any) -> None:
        """Refuse a body deeper than L{ccproxy.validation.MAX_JSON_DEPTH}, so that every later
        walk of it is shallow."""
        check_depth(body)

    def render_POST(self, request: Request) -> int:  # noqa: N802
        rid = _new_request_id(request)
        try:
            if not client_authorized(request.requestHeaders, self._context.settings.anthropic_api_key):
                raise UNAUTHORIZED  # normally refused earlier, when the headers arrived
            self.handle(request, rid, self._raw(request))
        except RequestError as invalid:
            self._refuse(request, rid, ApiError(400, "invalid_request_error", str(invalid)))
        except ApiError as error:
            self._refuse(request, rid, error)
        return NOT_DONE_YET

    def _refuse(self, request: Request, rid: str, error: ApiError) -> None:
        """Answer with C{error} before any upstream call, and log the request's line."""
        write_error(request, error, rid)
        now = self._context.clock.seconds()
        stats = self._context.stats
        stats.requests += 1
        stats.errors += 1
        log_request(RequestRecord(rid, "-", "-", False, now, error.status, "refused", ended=now, error=error.message))

    def handle(self, request: Request, rid: str, raw: bytes) -> None:
        """Answer a request whose key and body (C{raw}, to be L{decoded}) passed the checks."""
        raise NotImplementedError


class Messages(ClientRequest):
    """C{POST /v1/messages}: convert, call upstream, stream or assemble the answer."""

    def check_depth(self, body: Any) -> None:
        """Checked in L{handle}: the remembered parts were checked when first seen, so only
        the new ones are (L{ccproxy.parts.RequestParts.split})."""

    def handle(self, request: Request, rid: str, raw: bytes) -> None:
        context = self._context
        # A resent conversation is split by its bytes (ccproxy.layouts); any other body is decoded.
        body: Any = None
        parts = None if context.settings.debug else context.parts.split_resent(raw)
        if parts is None:
            body = self.decoded(raw)
            parts = context.parts.split(body, raw)
        if parts is None:  # something is invalid: the whole body's validation says what, and where
            check_depth(body)
            parsed = parse_messages_request(body)
            input_estimate = context.tokens.count_request(body)
        else:
            parsed = parts.request
            input_estimate = context.tokens.count_request(parts.counted, parts.texts)
        if parsed.max_tokens == 0:
            write_json(request, 200, _empty_message(parsed, input_estimate))
            return
        upstream_model = context.router.resolve(parsed.model)
        if context.settings.debug:
            debug_dump("client request", rid, body, context.settings.secrets)
        session = request.getHeader("x-claude-code-session-id")
        conversion = convert_request(parsed, upstream_model, context.profile, session, context.walks)
        if conversion.dropped_tools and context.settings.log_mode != "simple":
            _log.info(
                "request {request_id}: dropped server tools with no OpenAI form: {tools}",
                request_id=rid,
                tools=", ".join(conversion.dropped_tools),
            )
        record = RequestRecord(rid, parsed.model, upstream_model, parsed.stream, context.clock.seconds())
        MessageExchange(request, context, conversion, record, input_estimate).start()


def _empty_message(parsed: MessagesRequest, input_tokens: int) -> dict[str, Any]:
    """The answer to C{max_tokens: 0} (a cache pre-warm): nothing generated, no upstream call."""
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": parsed.model,
        "content": [],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


class CountTokens(ClientRequest):
    """C{POST /v1/messages/count_tokens}: counted locally, never sent upstream."""

    def handle(self, request: Request, rid: str, raw: bytes) -> None:
        body = self.decoded(raw)
        parse_count_tokens_request(body)
        write_json(request, 200, {"input_tokens": self._context.tokens.count_request(body)})


def build_root(context: Context) -> Resource:
    """The whole tree."""
    root = Status(context)
    root.isLeaf = False
    root.putChild(b"", Status(context))
    root.putChild(b"health", Status(context))
    api = JSONResource()
    api.putChild(b"hello", Hello())
    root.putChild(b"api", api)
    if context.settings.passthrough_mode:
        root.putChild(b"v1", Passthrough(context, _new_request_id))
        return root
    v1 = JSONResource()
    # Not leaves: /v1/messages/x and /v1/messages/count_tokens/x are 404s, not aliases.
    messages = Messages(context)
    messages.isLeaf = False
    count_tokens = CountTokens(context)
    count_tokens.isLeaf = False
    messages.putChild(b"count_tokens", count_tokens)
    v1.putChild(b"messages", messages)
    root.putChild(b"v1", v1)
    return root
