"""The Redis store's Lua scripts: each breaker operation is one script, atomic and timed by Redis's own clock.

KEYS: state hash, calls zset, failures zset, probe-lease zset. Times are Redis's (TIME), in seconds. A forced-open
breaker has `forced_by` and no `retry_at` in its hash, and the hash does not expire: it stays open until reset.
"""

from __future__ import annotations

_PRELUDE = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(x) return string.format('%.6f', x) end
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local function enter(to, now, cooldown, ttl_ms)
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[1], 'state', to, 'epoch', epoch + 1, 'consecutive', 0)
  redis.call('HDEL', KEYS[1], 'forced_by')
  if to == 'open' then
    redis.call('HSET', KEYS[1], 'opened_at', num(now), 'retry_at', num(now + cooldown))
  elseif to == 'closed' then
    redis.call('HDEL', KEYS[1], 'opened_at', 'retry_at')
  end
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
"""

ACQUIRE = _PRELUDE + """
if state == 'closed' then return {'closed', epoch} end
local now = clock()
local moved = 0
if state == 'open' then
  local retry_at = redis.call('HGET', KEYS[1], 'retry_at')
  -- no retry time: forced open until reset
  if not retry_at or now < tonumber(retry_at) then return {'rejected'} end
  enter('half_open', now, 0, ARGV[3])
  epoch, moved = epoch + 1, 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', num(now))
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[1]) then return {'rejected'} end
local token = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[4], num(now + tonumber(ARGV[2])), token)
redis.call('PEXPIRE', KEYS[4], math.ceil(tonumber(ARGV[2]) * 1000))
return {'probe', epoch, tostring(token), moved, num(now)}
"""

RECORD = _PRELUDE + """
if tonumber(ARGV[1]) ~= epoch or state == 'open' then return {'stale'} end
local now, failed, window, cooldown, ttl_ms = clock(), ARGV[2] == '1', tonumber(ARGV[3]), ARGV[7], ARGV[8]
if state == 'half_open' then
  enter(failed and 'open' or 'closed', now, cooldown, ttl_ms)
  return {'moved', num(now)}
end
local consecutive = 0
if failed then consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
else redis.call('HSET', KEYS[1], 'consecutive', 0) end
local id = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], num(now), id)
if failed then redis.call('ZADD', KEYS[3], num(now), id) end
for i = 2, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', num(now - window))
  redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000))
end
redis.call('PEXPIRE', KEYS[1], ttl_ms)
if not failed then return {'recorded'} end
local calls, failures = redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])
local rate_applies = calls >= tonumber(ARGV[5])
if consecutive >= tonumber(ARGV[4]) or (rate_applies and failures >= tonumber(ARGV[6]) * calls) then
  enter('open', now, cooldown, ttl_ms)
  return {'moved', num(now), consecutive, calls, failures}
end
return {'recorded'}
"""

RELEASE = _PRELUDE + """
if tonumber(ARGV[1]) == epoch then redis.call('ZREM', KEYS[4], ARGV[2]) end
return {'released'}
"""

STATUS = _PRELUDE + """
local now = clock()
local since = '(' .. num(now - tonumber(ARGV[1]))
local h = redis.call('HMGET', KEYS[1], 'consecutive', 'opened_at', 'retry_at', 'forced_by')
return {state, tonumber(h[1] or '0'), redis.call('ZCOUNT', KEYS[2], since, '+inf'),
        redis.call('ZCOUNT', KEYS[3], since, '+inf'), redis.call('ZCOUNT', KEYS[4], '(' .. num(now), '+inf'),
        h[2] or '', h[3] or '', h[4] or ''}
"""

RESET = _PRELUDE + """
local now = clock()
enter('closed', now, 0, ARGV[1])
return {state, num(now)}
"""

FORCE_OPEN = _PRELUDE + """
if redis.call('HEXISTS', KEYS[1], 'forced_by') == 1 then return {'unchanged'} end
local now = clock()
enter('open', now, 0, ARGV[2])
redis.call('HSET', KEYS[1], 'forced_by', ARGV[1])
redis.call('HDEL', KEYS[1], 'retry_at')
redis.call('PERSIST', KEYS[1])
return {state, num(now)}
"""
