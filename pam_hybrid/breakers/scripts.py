"""The Redis store's Lua scripts: each breaker operation is one script, atomic and timed by Redis's own clock.

KEYS: state hash, calls zset, failures zset, probe-lease zset, outcomes hash. Times are Redis's (TIME), in seconds.
A call on record (closed state) is a member named by its number, zero-padded so that calls started in the same
microsecond still sort in start order: in `calls` and `failures` scored by when it started, in `outcomes` with
'r' (running), 's' or 'f'. The rules are those of `rules` (in Python for the in-process store). A forced-open
breaker has `forced_by` and no `retry_at` in its hash, and the hash does not expire: it stays open until reset.
The shared prelude and the bodies of ACQUIRE and RECORD name their keys BK and their arguments BA (KEYS and ARGV in
a script of their own), so that those two can also run as functions inside a larger script.
"""

from __future__ import annotations

_OWN_KEYS = "local BK = KEYS\n"

_PRELUDE = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(x) return string.format('%.6f', x) end
local state = redis.call('HGET', BK[1], 'state') or 'closed'
local epoch = tonumber(redis.call('HGET', BK[1], 'epoch') or '0')
local function enter(to, now, cooldown, ttl_ms)
  redis.call('DEL', BK[2], BK[3], BK[4], BK[5])
  redis.call('HSET', BK[1], 'state', to, 'epoch', epoch + 1, 'consecutive', 0)
  redis.call('HDEL', BK[1], 'forced_by')
  if to == 'open' then
    redis.call('HSET', BK[1], 'opened_at', num(now), 'retry_at', num(now + cooldown))
  elseif to == 'closed' then
    redis.call('HDEL', BK[1], 'opened_at', 'retry_at')
  end
  redis.call('PEXPIRE', BK[1], ttl_ms)
end
local function prune(now, window, lease, keep)
  for _ = 1, 100 do
    local first = redis.call('ZRANGE', BK[2], 0, 0, 'WITHSCORES')
    if #first == 0 then return end
    local started = tonumber(first[2])
    local running = redis.call('HGET', BK[5], first[1]) == 'r'
    if redis.call('ZCARD', BK[2]) < keep or started > now - window or (running and started > now - lease) then
      return
    end
    redis.call('ZREM', BK[2], first[1])
    redis.call('ZREM', BK[3], first[1])
    redis.call('HDEL', BK[5], first[1])
  end
end
local function failures_beside(members, from, to, step, cap)
  local n = 0
  for i = from, to, step do
    if n >= cap or redis.call('HGET', BK[5], members[i]) ~= 'f' then return n end
    n = n + 1
  end
  return n
end
"""

_ACQUIRE_BODY = """
local now = clock()
if state == 'closed' then
  prune(now, tonumber(BA[4]), tonumber(BA[2]), tonumber(BA[5]))
  local member = string.format('%012d', redis.call('HINCRBY', BK[1], 'seq', 1))
  redis.call('ZADD', BK[2], num(now), member)
  redis.call('HSET', BK[5], member, 'r')
  for _, key in ipairs({BK[1], BK[2], BK[5]}) do redis.call('PEXPIRE', key, BA[3]) end
  return {'closed', epoch, member}
end
local moved = 0
if state == 'open' then
  local retry_at = redis.call('HGET', BK[1], 'retry_at')
  -- no retry time: forced open until reset
  if not retry_at or now < tonumber(retry_at) then return {'rejected'} end
  enter('half_open', now, 0, BA[3])
  epoch, moved = epoch + 1, 1
end
redis.call('ZREMRANGEBYSCORE', BK[4], '-inf', num(now))
if redis.call('ZCARD', BK[4]) >= tonumber(BA[1]) then return {'rejected'} end
local token = redis.call('HINCRBY', BK[1], 'seq', 1)
redis.call('ZADD', BK[4], num(now + tonumber(BA[2])), token)
redis.call('PEXPIRE', BK[4], math.ceil(tonumber(BA[2]) * 1000))
return {'probe', epoch, tostring(token), moved, num(now)}
"""

ACQUIRE = "local BK, BA = KEYS, ARGV\n" + _PRELUDE + _ACQUIRE_BODY

ACQUIRE_FUNCTION = "local function breaker_acquire(BK, BA)\n" + _PRELUDE + _ACQUIRE_BODY + "end\n"
"""ACQUIRE as a Lua function of its keys and arguments, for a script that does more in the same round trip
(pam_hybrid.runtime.preflight): `breaker_acquire(keys, args)` returns what ACQUIRE returns."""


_RECORD_BODY = """
if tonumber(BA[1]) ~= epoch or state == 'open' then return {'stale'} end
local now, failed, window, cooldown, ttl_ms = clock(), BA[2] == '1', tonumber(BA[3]), BA[7], BA[8]
if state == 'half_open' then
  enter(failed and 'open' or 'closed', now, cooldown, ttl_ms)
  return {'moved', num(now)}
end
local member = BA[9]
local outcome = redis.call('HGET', BK[5], member)
if not failed then
  if outcome == 'r' then
    redis.call('HSET', BK[5], member, 's')
    redis.call('HSET', BK[1], 'consecutive', 0)
  end
  return {'recorded'}
end
-- a success at the first token is overruled by a failure later in the stream
if not outcome or outcome == 'f' then return {'recorded'} end
redis.call('HSET', BK[5], member, 'f')
redis.call('ZADD', BK[3], redis.call('ZSCORE', BK[2], member), member)
for _, key in ipairs({BK[1], BK[3], BK[5]}) do redis.call('PEXPIRE', key, ttl_ms) end
local cap = tonumber(BA[4])
local rank = redis.call('ZRANK', BK[2], member)
local before = redis.call('ZRANGE', BK[2], math.max(0, rank - cap), rank)
local after = redis.call('ZRANGE', BK[2], rank, rank + cap)
local consecutive = 1 + failures_beside(before, #before - 1, 1, -1, cap - 1)
consecutive = consecutive + failures_beside(after, 2, #after, 1, cap - consecutive)
redis.call('HSET', BK[1], 'consecutive', consecutive)
local since = '(' .. num(now - window)
local calls, failures = redis.call('ZCOUNT', BK[2], since, '+inf'), redis.call('ZCOUNT', BK[3], since, '+inf')
local rate_applies = calls >= tonumber(BA[5])
if consecutive >= cap or (rate_applies and failures >= tonumber(BA[6]) * calls) then
  enter('open', now, cooldown, ttl_ms)
  return {'moved', num(now), consecutive, calls, failures}
end
return {'recorded'}
"""

RECORD = "local BK, BA = KEYS, ARGV\n" + _PRELUDE + _RECORD_BODY

RECORD_FUNCTION = "local function breaker_record(BK, BA)\n" + _PRELUDE + _RECORD_BODY + "end\n"
"""RECORD as a Lua function of its keys and arguments, like ACQUIRE_FUNCTION."""


RELEASE = _OWN_KEYS + _PRELUDE + """
if tonumber(ARGV[1]) ~= epoch then return {'stale'} end
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[4], ARGV[2])
elseif redis.call('HGET', KEYS[5], ARGV[2]) == 'r' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[5], ARGV[2])
end
return {'released'}
"""

STATUS = _OWN_KEYS + _PRELUDE + """
local now = clock()
local since = '(' .. num(now - tonumber(ARGV[1]))
local h = redis.call('HMGET', KEYS[1], 'consecutive', 'opened_at', 'retry_at', 'forced_by')
return {state, tonumber(h[1] or '0'), redis.call('ZCOUNT', KEYS[2], since, '+inf'),
        redis.call('ZCOUNT', KEYS[3], since, '+inf'), redis.call('ZCOUNT', KEYS[4], '(' .. num(now), '+inf'),
        h[2] or '', h[3] or '', h[4] or ''}
"""

RESET = _OWN_KEYS + _PRELUDE + """
local now = clock()
enter('closed', now, 0, ARGV[1])
return {state, num(now)}
"""

FORCE_OPEN = _OWN_KEYS + _PRELUDE + """
if redis.call('HEXISTS', KEYS[1], 'forced_by') == 1 then return {'unchanged'} end
local now = clock()
enter('open', now, 0, ARGV[2])
redis.call('HSET', KEYS[1], 'forced_by', ARGV[1])
redis.call('HDEL', KEYS[1], 'retry_at')
redis.call('PERSIST', KEYS[1])
return {state, num(now)}
"""
