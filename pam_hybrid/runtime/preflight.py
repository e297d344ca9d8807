"""The Redis work before a message's upstream call, in one round trip: one script claims its `client_msg_id`, takes
its place under the user's limits and asks the breaker of the provider it will call first, and says what came of
each. Without Redis the same checks run in process (`claims`, `limits`; the breaker is asked by the gateway).

Which provider comes first is known up front for a forced route; for `auto` it is the router's choice for the
message alone (exact for a new conversation; for a follow-up, whose history the router also reads, a guess: a
permit the answer does not use is released as soon as it asks for another provider). An answer near the day's cap
that `auto` would send to the complex route asks its breaker in the gateway, as does a regenerated answer. A Redis
outage lets the message through: the claim is checked against the saved answers and the breaker fails open.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from pam_hybrid.breakers import Ahead, CircuitBreaker, Permit, RedisBreakerStore
from pam_hybrid.breakers.scripts import ACQUIRE_FUNCTION, RECORD_FUNCTION
from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.exceptions import BadInput
from pam_hybrid.gateway.routes import resolve_route
from pam_hybrid.gateway.stream import ChatRequest
from pam_hybrid.redis_client import redis_client
from pam_hybrid.routing import classify
from pam_hybrid.runtime import claims, limits

logger = logging.getLogger(__name__)

# KEYS: the claim (when ARGV[1] is '1'), the limits' three (ADMIT_FUNCTION), then the breaker's five (ACQUIRE_FUNCTION;
# none: not asked). ARGV: claim flag, message id, claim TTL s, the limits' six, the spend from which the breaker is
# not asked ('0': always asked), the breaker's five.
# Returns {'held', answer id} | {'limits', status, retry after} | {'admitted', spent, ACQUIRE's reply (if asked)}.
_SCRIPT = limits.ADMIT_FUNCTION + ACQUIRE_FUNCTION + """
local claimed = ARGV[1] == '1'
local k = claimed and 1 or 0
if claimed then
  local held = redis.call('GET', KEYS[1])
  if held then return {'held', held} end
end
local admitted = limits_admit({KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]},
                              {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]})
if admitted[1] ~= 0 then return {'limits', admitted[1], admitted[2]} end
if claimed then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
local spent = admitted[3]
local near = tonumber(ARGV[10])
if #KEYS < k + 8 or (near > 0 and spent ~= '' and tonumber(spent) >= near) then return {'admitted', spent} end
return {'admitted', spent, breaker_acquire({KEYS[k + 4], KEYS[k + 5], KEYS[k + 6], KEYS[k + 7], KEYS[k + 8]},
                                           {ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15]})}
"""


@dataclass(frozen=True, slots=True)
class Checked:
    """What admission needs to know: the answer that holds the message's client id (None: this one does now), else
    what its limits said, and the breaker asked ahead (None: not asked; the gateway asks). `claimed`: the client id
    was claimed whatever the limits said, so a refused message must give it back (the script claims only an
    admitted one)."""

    held: uuid.UUID | None
    admitted: limits.Admitted | limits.Refusal | None
    ahead: Ahead | None = None
    claimed: bool = False


def first_provider(request: ChatRequest, s: PamSettings) -> tuple[str, Decimal] | None:
    """The provider the answer will call first, as far as admission can tell, and the day's spend from which it
    will not (an `auto` message routed complex goes simple near the cap; 0: none). None: not known up front."""
    if request.regenerate_of is not None and request.route == "auto":
        return None  # the question is the saved one
    route = request.route if request.route != "auto" else classify(request.content, (), s.router_threshold).route
    try:
        target = resolve_route(route, s, provider=request.provider, model=request.model)
    except BadInput:
        return None
    cap, share = Decimal(s.daily_spend_cap_usd), Decimal(str(s.budget_routing_at))
    near = cap * share if request.route == "auto" and route == "complex" and cap > 0 and share > 0 else Decimal(0)
    return target.provider.name, near


async def check(request: ChatRequest, s: PamSettings) -> Checked:
    """Claim the message's client id, take its place under the user's limits and ask its first provider's breaker:
    one Redis round trip (two the first time a user is seen on a day, whose spend is then read from the database)."""
    client = redis_client()
    if client is None:
        return await _in_process(request, s)
    breaker = provider_breaker()
    first = first_provider(request, s)
    try:
        return await _in_redis(client, breaker, request, s, first)
    except RedisError as exc:
        logger.warning("admission: Redis unreachable, message %s let through (%r)", request.message_id, exc)
        held = await claims.saved_holder(request.user, request.client_msg_id) if request.client_msg_id else None
        ahead = None if first is None else Ahead(first[0], Permit(first[0], epoch=-1))
        return Checked(held, limits.Admitted(None), ahead)


async def _in_process(request: ChatRequest, s: PamSettings) -> Checked:
    if request.client_msg_id:
        held = await claims.claim(request.user, request.client_msg_id, request.message_id)
        if held is not None:
            return Checked(held, None)
    return Checked(None, await limits.admit(request.user.pk, request.message_id, s), claimed=True)


async def _in_redis(client: Any, breaker: CircuitBreaker, request: ChatRequest, s: PamSettings,
                    first: tuple[str, Decimal] | None) -> Checked:
    script = client.register_script(_SCRIPT)
    checking = limits.check(request.user.pk, request.message_id, s)
    keys = [claims.key(request.user.pk, request.client_msg_id)] if request.client_msg_id else []
    keys += checking.keys
    args: list[Any] = ["1" if request.client_msg_id else "0", str(request.message_id), claims.CLAIM_TTL_S,
                       *checking.args, str(first[1]) if first else "0"]
    store = breaker.store
    if first is not None and isinstance(store, RedisBreakerStore):
        keys += store.keys(first[0])
        args += store.acquire_args(breaker.config)
    for _ in range(2):
        reply = await script(keys=keys, args=args)
        kind = _text(reply[0])
        if kind == "held":
            return Checked(claims.holder_of(reply[1]), None)
        if kind == "limits" and int(reply[1]) == limits.SPEND_UNKNOWN:
            await checking.spend_load(client)
            continue
        if kind == "limits":
            return Checked(None, checking.outcome(int(reply[1]), float(reply[2]), None))
        ahead = None
        if len(reply) > 2 and first is not None:
            ahead = Ahead(first[0], RedisBreakerStore.permit_of(first[0], breaker.config, reply[2]))
        return Checked(None, checking.outcome(0, 0.0, reply[1]), ahead)
    return await _in_process(request, s)  # the day's spend would not stay in Redis: the checks one by one


# KEYS: the limits' two (RELEASE_FUNCTION), then the breaker's five (RECORD_FUNCTION; none: nothing to report).
# ARGV: the limits' two, the breaker's nine.
_SETTLE = limits.RELEASE_FUNCTION + RECORD_FUNCTION + """
limits_release({KEYS[1], KEYS[2]}, {ARGV[1], ARGV[2]})
if #KEYS > 2 then
  breaker_record({KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]},
                 {ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]})
end
return 0
"""


async def settle(user_id: object, answer_id: uuid.UUID, cost_usd: Decimal, *, breaker: CircuitBreaker,
                 ahead: Ahead | None) -> None:
    """The answer has ended: free its place, count its cost against the user's day and report the success of the
    breaker permit asked ahead for it (`Ahead`), in one round trip; give that permit back if it was never used."""
    client = redis_client()
    store = breaker.store
    permit = ahead.permit if ahead is not None and ahead.succeeded else None
    if client is None or permit is None or not permit.token or not isinstance(store, RedisBreakerStore):
        await limits.release(user_id, answer_id, cost_usd)
        await release_unused(breaker, ahead)
        return
    keys = limits.release_keys(user_id) + store.keys(permit.provider)
    args = [str(answer_id), str(cost_usd), *store.record_args(permit, breaker.config, failed=False)]
    try:
        await client.register_script(_SETTLE)(keys=keys, args=args)
    except RedisError as exc:
        logger.warning("admission: Redis unreachable, answer %s's place frees itself when its lease ends (%r)",
                       answer_id, exc)


async def release_unused(breaker: CircuitBreaker, ahead: Ahead | None) -> None:
    """Give back a breaker permit asked ahead that the answer never asked for (it ended before calling)."""
    if ahead is not None and not ahead.asked and ahead.permit is not None:
        ahead.asked = True
        await breaker.release(ahead.permit)


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
