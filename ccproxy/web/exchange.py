"""One message exchange: post upstream (retrying what is safe), then relay the answer.

The client's response headers are held until the upstream's status is known, so an
upstream 429 or 5xx reaches Claude Code as the same status (with C{retry-after}) and its
own retry logic works. The hold is bounded: a streaming client whose upstream has not
answered within C{PING_INTERVAL} gets its headers, C{message_start} and pings, so its
idle watchdog never fires; any later failure then arrives as an C{error} event.

A 400 that names a parameter the model rejects or its output-token maximum is fixed
(L{ccproxy.adapt}) and the request sent again, at most twice; the fix is remembered.

Transient failures (connection refused or reset, a stale pooled connection, 502/503/529,
a 429 with a short C{Retry-After}) are retried with jittered exponential back-off, but
only while nothing has been sent to the client.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ccproxy import jsonio
from ccproxy.adapt import TOKEN_FIELDS, fix_for_error
from ccproxy.config import Settings
from ccproxy.convert.request import Conversion
from ccproxy.convert.stream import StreamConverter
from ccproxy.errors import (
    ApiError,
    from_upstream,
    retry_after_seconds,
    upstream_error_details,
)
from ccproxy.ids import message_id
from ccproxy.logs import RequestRecord, debug_dump, log_request
from ccproxy.models import budget_output, model_info
from ccproxy.openai import wire_payload
from ccproxy.redact import redact_text
from ccproxy.web.bodies import Discard, ErrorBody, lower_headers
from ccproxy.web.clientstream import ClientStream
from ccproxy.web.context import Context
from ccproxy.web.errors import write_error
from ccproxy.web.sinks import MessageSink, Sink, SSESink
from ccproxy.web.streaming import Relay
from ccproxy.web.unreached import unreached

__all__ = ["MessageExchange", "RETRY_STATUSES"]

_log = Logger()
RETRY_STATUSES = frozenset({502, 503, 529})
MAX_FIXES = 2


class MessageExchange:
    """Runs one converted request against the upstream for one client request.

    It owns the request's L{RequestRecord}: whatever way the exchange ends (answer,
    upstream error, client gone), L{_ended} runs once and logs the request's line.
    """

    def __init__(
        self,
        request: Request,
        context: Context,
        conversion: Conversion,
        record: RequestRecord,
        input_estimate: int,
    ) -> None:
        self._request = request
        self._context = context
        self._model = conversion.request.model
        # Only the JSON-ready body is kept (not the attrs tree): fixes edit it, retries resend it.
        self._payload: dict[str, Any] = wire_payload(conversion.request)
        self._record = record
        self._input_estimate = input_estimate
        self._provider = context.settings.upstream_host
        self._body = b""
        self._attempt = 0
        self._pending: Deferred[Any] | None = None
        self._timer: IDelayedCall | None = None  # the next retry
        self._early: IDelayedCall | None = None  # starting the stream while upstream is silent
        self._deadline: IDelayedCall | None = None
        self._fixes_tried = 0
        self._closing = False
        self._timed_out = False
        self._relay: Relay | None = None
        self._client_gone = False
        settings = context.settings
        rid = record.request_id
        sink: Sink = SSESink(request, rid) if record.stream else MessageSink(request, rid)
        converter = StreamConverter(
            model=record.client_model,
            message_id=message_id(),
            upstream_model=conversion.request.model,
            profile=context.profile.name,
            names=conversion.names,
            ids=conversion.ids,
            input_estimate=input_estimate,
            provider=self._provider,
            secrets=settings.secrets,
        )
        self._debug = settings.secrets if settings.debug else None
        self._client = ClientStream(converter, sink, record, context.clock, settings.ping_interval, self._debug)

    def start(self) -> None:
        """Send the upstream request; the client response follows asynchronously."""
        context = self._context
        context.stats.active += 1
        context.exchanges.add(self)
        self._request.notifyFinish().addBoth(self._ended)
        settings = context.settings
        learned = context.learned.get(settings.openai_base_url, self._model)
        if learned is not None:
            self._payload = learned.apply(self._payload)
        if not self._fit_output_budget(settings):
            return
        self._body = jsonio.dumps(self._payload)
        if self._debug is not None:
            debug_dump("upstream request", self._record.request_id, self._body, self._debug)
        if self._client.streams:
            # Once per exchange, whatever the retries: the client hears something within
            # PING_INTERVAL of its request.
            self._early = context.clock.callLater(settings.ping_interval, self._begin_early)
        self._send()

    def _fit_output_budget(self, settings: Settings) -> bool:
        """Cap the output limit by what the model is known to take (H.10).

        A prompt that cannot fit the model's window at all is answered here with Claude
        Code's prompt-too-long wording (which makes it compact) instead of upstream.
        """
        model = self._model
        info = model_info(model, settings.model_limits)
        field_name = next((f for f in TOKEN_FIELDS if f in self._payload), None)
        if info is None or field_name is None:
            return True
        budget = budget_output(self._payload[field_name], info, self._input_estimate)
        if budget is None:
            message = f"prompt is too long: {self._input_estimate} tokens > {info.context_window} maximum"
            self._fail(ApiError(400, "invalid_request_error", message, {"x-should-retry": "false"}))
            return False
        self._payload[field_name] = budget
        return True

    # -- attempts ----------------------------------------------------------------------

    def _send(self) -> None:
        self._attempt += 1
        context = self._context
        try:
            pending = context.upstream.post_chat(self._body, context.profile.headers(context.settings))
        except Exception:  # noqa: BLE001 - an unusable URL must still answer the client
            _log.failure("could not start the upstream request")
            self._fail(ApiError(502, "api_error", f"cannot reach upstream {self._provider}"))
            return
        self._pending = pending
        self._deadline = context.clock.callLater(context.settings.upstream_timeout, self._headers_late)
        pending.addBoth(self._headers_arrived)
        pending.addCallbacks(self._response, self._upstream_failed)
        pending.addErrback(self._bug)

    def _headers_late(self) -> None:
        """No response headers within UPSTREAM_TIMEOUT: give up on this upstream call."""
        self._deadline = None
        self._timed_out = True
        self._cancel_pending()

    def _headers_arrived(self, result: Any) -> Any:
        self._cancel(self._deadline)
        self._deadline = None
        return result

    def _may_retry(self) -> bool:
        return (
            not self._client_gone
            and not self._closing
            and not self._client.started
            and self._attempt <= self._context.settings.upstream_retries
        )

    def _retry(self, why: str, delay: float | None = None) -> None:
        settings = self._context.settings
        if delay is None:
            delay = settings.retry_backoff * (2 ** (self._attempt - 1)) * (0.75 + random.random() / 4)
        _log.info(
            "request {request_id}: attempt {attempt} failed ({why}); retrying in {delay:.2f} s",
            request_id=self._record.request_id,
            attempt=self._attempt,
            why=why,
            delay=delay,
        )
        self._pending = None
        self._cancel(self._deadline)
        self._timer = self._context.clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._timer = None
        self._send()

    def _begin_early(self) -> None:
        """The upstream is slow to answer: start the stream so pings can flow."""
        self._early = None
        if not self._client_gone:
            self._client.begin()

    @staticmethod
    def _cancel(timer: IDelayedCall | None) -> None:
        if timer is not None and timer.active():
            timer.cancel()

    def _timer_cancel(self) -> None:
        """Stop every timer of the exchange (it has an answer, or it is over)."""
        for timer in (self._timer, self._deadline, self._early):
            self._cancel(timer)
        self._timer = self._deadline = self._early = None

    # -- outcomes ----------------------------------------------------------------------

    def _response(self, response: IResponse) -> None:
        self._pending = None
        if self._client_gone or self._closing:
            response.deliverBody(Discard())
            return
        headers = lower_headers(response)
        # A 200 HTML page is a gateway's or captive portal's error page, not a stream:
        # report its text instead of "the stream ended unexpectedly".
        if response.code != 200 or "text/html" in headers.get("content-type", ""):
            collector = ErrorBody()
            collector.done.addCallback(self._upstream_error, response.code, headers)
            collector.done.addErrback(self._bug)
            response.deliverBody(collector)
            return
        self._timer_cancel()
        # No more retries or fixes from here: let go of the request copies (a long
        # Claude Code request is tens of KB, held for the whole stream otherwise).
        self._body, self._payload = b"", {}
        self._relay = Relay(
            self._request,
            self._client,
            self._context.clock,
            idle_timeout=self._context.settings.upstream_timeout,
            json_body="application/json" in headers.get("content-type", ""),
            debug_secrets=self._debug,
        )
        response.deliverBody(self._relay)

    def _upstream_error(self, body: bytes, status: int, headers: dict[str, str]) -> None:
        if self._client_gone:
            return
        settings = self._context.settings
        if self._debug is not None:
            debug_dump(f"upstream error {status}", self._record.request_id, body, self._debug)
        if status == 400 and self._adapted(body):
            return
        if self._may_retry():
            if status in RETRY_STATUSES:
                self._retry(f"upstream {status}")
                return
            wait = retry_after_seconds(headers, self._context.clock.seconds())
            if status == 429 and wait is not None and float(wait) <= settings.retry_max_wait:
                self._retry("upstream 429", float(wait))
                return
        now = self._context.clock.seconds()
        error = from_upstream(status, body, headers, self._provider, now, settings.secrets)
        self._record.error = f"upstream {status}"
        self._fail(error)

    def _adapted(self, body: bytes) -> bool:
        """Fix the request for a 400 that says what the model does not accept; retry once."""
        if self._fixes_tried >= MAX_FIXES or self._client.started:
            return False
        message, param = upstream_error_details(body)
        fix = fix_for_error(self._payload, message, param)
        if fix is None:
            return False
        self._fixes_tried += 1
        settings = self._context.settings
        model = self._model
        self._context.learned.learn(settings.openai_base_url, model, fix)
        _log.info(
            "request {request_id}: {model} rejected the request ({message}); adjusted and retrying",
            request_id=self._record.request_id,
            model=model,
            message=redact_text(message, settings.secrets)[:200],
        )
        self._payload = fix.apply(self._payload)
        self._body = jsonio.dumps(self._payload)
        self._attempt -= 1  # a fixed request is a new request, not a retry
        self._send()
        return True

    def _upstream_failed(self, reason: Failure) -> None:
        self._pending = None
        if self._client_gone or self._closing:
            return
        if self._timed_out:
            timeout = self._context.settings.upstream_timeout
            error = ApiError(504, "timeout_error", f"{self._provider}: no response within {timeout:g} s")
        else:
            failure = unreached(reason)
            if failure.transient and self._may_retry():
                self._retry(failure.message)
                return
            error = ApiError(502, "api_error", f"cannot reach upstream {self._provider}: {failure.message}")
        self._fail(error)

    def _fail(self, error: ApiError) -> None:
        """Tell the client: an HTTP error before the stream started, an event after."""
        self._timer_cancel()
        self._record.error = self._record.error or error.message
        if self._client_gone:
            return
        if self._client.started:
            self._client.fail(error)
            self._client.end()
        else:
            write_error(self._request, error, self._record.request_id)

    def _bug(self, reason: Failure) -> None:
        _log.failure("request {request_id} failed inside ccproxy", reason, request_id=self._record.request_id)
        if not self._client_gone and not self._request.finished:
            self._fail(ApiError(500, "api_error", "internal error in ccproxy; see its log"))

    def shut_down(self) -> None:
        """The proxy is stopping and this exchange outlived the grace period: end it with
        an overloaded error (Claude Code retries those) and drop the upstream call."""
        self._closing = True
        error = ApiError(529, "overloaded_error", "ccproxy is shutting down; please retry")
        if self._relay is not None:
            self._relay.abort(error)
            return
        self._fail(error)
        self._cancel_pending()

    def _cancel_pending(self) -> None:
        """Abort the upstream call that has not answered yet.

        Not guarded by C{called}: while a pooled connection is being obtained, the
        Deferred counts as called (it waits on a chained one), yet C{cancel()} still
        reaches the request and aborts its connection. C{_pending} is C{None} once the
        response headers have arrived.
        """
        if self._pending is not None:
            self._pending.cancel()

    def _ended(self, result: Failure | None) -> None:
        """The client response is over (finished, or the connection was lost)."""
        self._context.exchanges.discard(self)
        self._timer_cancel()
        record = self._record
        if isinstance(result, Failure):
            self._client_gone = True
            self._client.abandon()
            self._cancel_pending()
            if self._relay is not None:
                self._relay.cancel()
            record.outcome = "cancelled"
        if record.usage is None and self._relay is not None:
            # The answer had begun but never reached its final usage (the client left, the
            # stream broke): the prompt and what was written were paid for all the same.
            record.usage, record.usage_estimated = self._client.converter.usage_so_far()
        record.ended = self._context.clock.seconds()
        record.status = self._request.code
        stats = self._context.stats
        stats.active -= 1
        stats.requests += 1
        if record.outcome == "cancelled":
            stats.cancelled += 1
        elif record.outcome != "ok" or record.status >= 400:
            stats.errors += 1
            if record.outcome == "ok":
                record.outcome = "error"
        log_request(record)
        self._warn_if_truncated()

    def _warn_if_truncated(self) -> None:
        """Some servers (Ollama) silently drop the oldest messages when a prompt exceeds
        their context, and their OpenAI endpoint cannot raise it. A prompt read far
        shorter than the one sent is that; say so, since Claude Code would otherwise lose
        its history without a word."""
        usage = self._record.usage
        if not self._context.profile.truncates_silently or not usage or self._record.usage_estimated:
            return
        read = int(usage.get("input_tokens") or 0) + int(usage.get("cache_read_input_tokens") or 0)
        if self._input_estimate > 2048 and read < 0.6 * self._input_estimate:
            _log.warn(
                "request {request_id}: Ollama read {read} prompt tokens of about {sent}: its context "
                "is smaller than the request and it dropped the oldest messages. Start Ollama with "
                "OLLAMA_CONTEXT_LENGTH=65536 (or more) and set MODEL_LIMITS to the same window.",
                request_id=self._record.request_id,
                read=read,
                sent=self._input_estimate,
            )
