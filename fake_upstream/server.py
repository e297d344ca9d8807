"""The fake's HTTP server: it listens, takes each request's scenario (queued, else maybe a random fault) and
answers it in its provider's wire format, in a running event loop or a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any

from fake_upstream.answer import plan_answer
from fake_upstream.background import LoopThread
from fake_upstream.connection import BadRequest, ClientGone, HttpConnection, HttpRequest, StopConnection
from fake_upstream.dialects import dialect_for, error_body, provider_for_path
from fake_upstream.prompt_cache import CacheControlError, CacheUsage, PromptCache
from fake_upstream.records import RecordedRequest, conclude
from fake_upstream.scenarios import FAULT_KINDS, FaultKind, Provider, Scenario, fault_scenario, fault_settings_check
from fake_upstream.streaming import reply_json, stream


class FakeUpstream:
    """Fake OpenAI + Anthropic streaming server; see fake_upstream/README.md.

    Knobs (plain attributes, read at each request, safe to set from any thread): ``ttft_ms``,
    ``token_delay_ms``, ``default_tokens`` (make the default reply exactly N tokens long),
    ``ping_interval_ms``, ``hang_limit_ms`` (longest a hang lasts unless its scenario says otherwise; None:
    until the client goes away), and for random faults ``fault_rate`` (the probability, from 0 to 1, that
    a streaming request with no queued scenario gets a fault) and ``fault_kinds`` (the kinds drawn from,
    uniformly; see :data:`FAULT_KINDS`). The faults are drawn from a ``random.Random(fault_seed)``, seeded
    at construction and reseeded by :meth:`reset` (setting ``fault_seed`` later changes nothing), so a seed
    and the same order of requests give the same faults; non-streaming requests are never faulted.
    Observations: ``requests``, ``active_streams`` (streaming requests being answered, also while hanging
    before the status line; and its ``peak_active_streams``), ``disconnects`` (clients that hung up
    mid-answer, or before any response byte), ``connections`` (TCP connections accepted) and
    ``fault_counts`` (random faults given, by kind).
    Anthropic requests with ``cache_control`` breakpoints go through ``prompt_cache`` (see
    fake_upstream.prompt_cache; ``min_cacheable_tokens`` overrides every model's minimum), emptied by :meth:`reset`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ttft_ms: float = 0.0,
        token_delay_ms: float = 0.0,
        default_tokens: int | None = None,
        ping_interval_ms: float = 100.0,
        hang_limit_ms: float | None = None,
        fault_rate: float = 0.0,
        fault_seed: int | None = None,
        fault_kinds: tuple[FaultKind, ...] = FAULT_KINDS,
        min_cacheable_tokens: int | None = None,
    ) -> None:
        fault_settings_check(fault_rate, fault_kinds)
        self.host = host
        self.port = port
        self.ttft_ms = ttft_ms
        self.token_delay_ms = token_delay_ms
        self.default_tokens = default_tokens
        self.ping_interval_ms = ping_interval_ms
        self.hang_limit_ms = hang_limit_ms
        self.fault_rate = fault_rate
        self.fault_seed = fault_seed
        self.fault_kinds = tuple(fault_kinds)
        self._initial_knobs = (ttft_ms, token_delay_ms, default_tokens, ping_interval_ms, hang_limit_ms)
        self._initial_faults = (fault_rate, fault_seed, self.fault_kinds)

        self.requests: list[RecordedRequest] = []
        self.active_streams = 0
        self.peak_active_streams = 0
        self.disconnects = 0
        self.connections = 0
        self.fault_counts: Counter[FaultKind] = Counter()
        self._faults = random.Random(fault_seed)
        self.prompt_cache = PromptCache(min_cacheable_tokens)
        self._initial_min_cacheable = min_cacheable_tokens

        self._scenarios: deque[Scenario] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._background: LoopThread | None = None

    # ---- URLs ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    # ---- scripting -------------------------------------------------------------------------------

    def enqueue(self, *scenarios: Scenario) -> None:
        """Queue scenarios; each is taken by the next request to its provider (any provider if None)."""
        with self._lock:
            self._scenarios.extend(scenarios)

    def pending_scenarios(self) -> list[Scenario]:
        with self._lock:
            return list(self._scenarios)

    def reset(self) -> None:
        """Forget queued scenarios, recorded requests and counters; restore the constructor's knobs and
        fault settings, and reseed the faults (the same seed gives the same faults again)."""
        with self._lock:
            self._scenarios.clear()
            self.fault_rate, self.fault_seed, self.fault_kinds = self._initial_faults
            self._faults.seed(self.fault_seed)
            self.fault_counts.clear()
        self.requests.clear()
        self.prompt_cache.clear()
        self.prompt_cache.min_tokens = self._initial_min_cacheable
        self.disconnects = 0
        self.connections = 0
        self.peak_active_streams = self.active_streams
        (self.ttft_ms, self.token_delay_ms, self.default_tokens, self.ping_interval_ms, self.hang_limit_ms) = (
            self._initial_knobs
        )


    def _take_scenario(self, provider: Provider) -> Scenario | None:
        with self._lock:
            for scenario in self._scenarios:
                if scenario.provider in (None, provider):
                    self._scenarios.remove(scenario)
                    return scenario
        return None

    def _draw_fault(self) -> tuple[FaultKind, float] | None:
        """Whether this request gets a random fault: its kind and where in the answer (0 <= position < 1)."""
        with self._lock:
            if self._faults.random() >= self.fault_rate or not self.fault_kinds:
                return None
            kind = self._faults.choice(self.fault_kinds)
            self.fault_counts[kind] += 1
            return kind, self._faults.random()


    def _scenario_for(
        self, provider: Provider, body: dict[str, Any], stream: bool, request_id: str
    ) -> tuple[Scenario, FaultKind | None]:
        """The request's scenario: the next one queued for its provider, else a random fault, else the default."""
        scenario = self._take_scenario(provider)
        if scenario is not None:
            return scenario, None
        drawn = self._draw_fault() if stream else None
        if drawn is None:
            return Scenario(), None
        kind, position = drawn
        n_units = len(plan_answer(provider, body, Scenario(), request_id, self.default_tokens).schedule)
        return fault_scenario(kind, position, n_units, self.hang_limit_ms), kind

    # ---- waiting (for assertions) ----------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0, interval: float = 0.005) -> bool:
        """Poll ``predicate`` from any event loop until it is true; False if still false after ``within`` s."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
        return True

    def wait_until_sync(self, predicate: Callable[[], bool], within: float = 5.0, interval: float = 0.005) -> bool:
        """Blocking variant of :meth:`wait_until` for synchronous tests."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    async def wait_for_disconnects(self, count: int = 1, within: float = 5.0) -> bool:
        """Wait until the server has seen ``count`` clients hang up mid-answer (False after ``within`` s)."""
        return await self.wait_until(lambda: self.disconnects >= count, within)

    # ---- lifecycle inside a running loop ---------------------------------------------------------

    async def start_async(self) -> None:
        """Start listening in the running event loop (binds a free port when ``port`` is 0)."""
        self._server = await asyncio.start_server(self._handle_connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        """Stop listening, close every connection (answers in progress end as "server_stopped")."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_async()

    # ---- lifecycle in a background thread --------------------------------------------------------

    def start(self) -> FakeUpstream:
        """Run the server in a background thread with its own event loop; returns once it listens."""
        if self._background is not None:
            raise RuntimeError("FakeUpstream already started")
        background = LoopThread(f"fake-upstream-{id(self):x}")
        background.start(self.start_async)
        self._background = background
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the loop and join the thread."""
        if self._background is None:
            return
        self._background.stop(self.stop_async, timeout)
        self._background = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- connections -----------------------------------------------------------------------------

    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections += 1
        conn = HttpConnection(reader, writer)
        try:
            while True:
                try:
                    request = await conn.read_request()
                except BadRequest as err:
                    await conn.send_json(400, {"error": {"message": str(err)}}, {}, keep_alive=False)
                    break
                if request is None:
                    break
                await self._respond(conn, request)
                if not request.keep_alive:
                    break
        except (ClientGone, StopConnection):
            pass
        except asyncio.CancelledError:
            # stop_async() cancels the connection tasks. This task is the top of its connection, so it ends
            # normally: Python 3.11's streams call task.exception() on it, which raises if it was cancelled.
            pass
        finally:
            self._connections.discard(task)
            await conn.close()

    async def _respond(self, conn: HttpConnection, http: HttpRequest) -> None:
        provider = provider_for_path(http.path)
        try:
            body: Any = json.loads(http.body) if http.body else None
        except ValueError:
            body = None
        record = RecordedRequest(
            provider=provider,
            method=http.method,
            path=http.path,
            headers=dict(http.headers),
            json=body,
            received_at=time.monotonic(),
            stream=isinstance(body, dict) and body.get("stream") is True,
        )
        self.requests.append(record)
        request_id = f"req_fake{next(self._ids):06d}"
        error_shape: Provider = provider or ("anthropic" if "anthropic-version" in http.headers else "openai")
        id_header = {"request-id" if error_shape == "anthropic" else "x-request-id": request_id}

        async def fail(status: int, message: str) -> None:
            record.status = status
            conclude(record, "error_status")
            error = error_body(error_shape, status, None, message, request_id)
            await conn.send_json(status, error, id_header, http.keep_alive)

        if provider is None or http.method != "POST":
            await fail(404, f"Invalid URL ({http.method} {http.path})")
            return
        if not isinstance(body, dict):
            await fail(400, "We could not parse the JSON body of your request.")
            return

        scenario, record.fault = self._scenario_for(provider, body, record.stream, request_id)
        record.scenario = scenario

        if scenario.drop_connection:
            conclude(record, "dropped")
            conn.reset()
            raise StopConnection
        if scenario.status is not None:
            headers = {**id_header, **scenario.headers}
            if scenario.retry_after is not None:
                headers["retry-after"] = f"{scenario.retry_after:g}"
            error = error_body(provider, scenario.status, scenario.error_type, scenario.error_message, request_id)
            record.status = scenario.status
            conclude(record, "error_status")
            await conn.send_json(scenario.status, error, headers, http.keep_alive)
            return
        cache: CacheUsage | None = None
        if provider == "anthropic" and not scenario.scripts_input_usage():
            try:
                cache = self.prompt_cache.use(body, http.headers.get("x-api-key", ""))
            except CacheControlError as err:
                await fail(400, str(err))
                return
        await self._answer(conn, record, provider, body, scenario, request_id, http.keep_alive, cache)

    async def _answer(
        self,
        conn: HttpConnection,
        record: RecordedRequest,
        provider: Provider,
        body: dict[str, Any],
        scenario: Scenario,
        request_id: str,
        keep_alive: bool,
        cache: CacheUsage | None = None,
    ) -> None:
        """Send the scenario's answer, streamed or as one JSON body, while watching for the client hanging up."""
        answer = plan_answer(provider, body, scenario, request_id, self.default_tokens, cache)
        record.tool_call_ids = [call.id for call in answer.tool_calls]
        dialect = dialect_for(provider, answer)
        if record.stream:
            self.active_streams += 1
            self.peak_active_streams = max(self.peak_active_streams, self.active_streams)
            try:
                await self._race_disconnect(conn, record, stream(conn, record, dialect, scenario, self))
            finally:
                self.active_streams -= 1
        else:
            await self._race_disconnect(conn, record, reply_json(conn, record, dialect, scenario, keep_alive, self))

    async def _race_disconnect(
        self, conn: HttpConnection, record: RecordedRequest, answer: Coroutine[Any, Any, None]
    ) -> None:
        """Run an answer coroutine while watching for the client hanging up; cancel the answer if it does."""
        answering = asyncio.ensure_future(answer)
        watching = asyncio.ensure_future(conn.watch_eof())
        try:
            await asyncio.wait({answering, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not answering.done():
                answering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answering
                raise ClientGone
            answering.result()  # re-raises ClientGone / StopConnection
        except ClientGone:
            conclude(record, "client_disconnected")
            self.disconnects += 1
            raise
        except asyncio.CancelledError:
            if record.outcome == "pending":
                conclude(record, "server_stopped")
            raise
        finally:
            for task in (answering, watching):
                task.cancel()
            await asyncio.gather(answering, watching, return_exceptions=True)
