-- Validates a command against the workspace and the session, applies
-- idempotency and the prompt rate, and appends the command to the inbox,
-- all in one step (see Store.Enqueue).
--
-- KEYS: meta, sessions zset, session hash, inbox, idempotency key, rate
-- key, workspace stream, its state, the session's stream state, fence
-- ARGV: kind, sid, create (1: create the session when missing), user,
-- text, idempotency TTL ms (0: no key), channel, agent for a created
-- session ("" = the workspace's), rate interval ms (0: no limit), rate
-- tolerance ms, most session records of the workspace (0: no limit),
-- workspace stream maxlen, entry tag
--
-- A created session is announced on the workspace stream
-- (session.created), and so is an accepted prompt (prompt.queued, with its
-- position among the session's prompts waiting), in the same step: the
-- whole room sees the queue at once, on any node.
--
-- Returns {status, inbox id or retry-after ms, created}; status ok, dup,
-- err_ws, err_session, err_destroyed, err_rate, err_sessions (a new
-- session over the cap: destroyed sessions count, their streams stay),
-- err_agent (a session's agent the workspace does not allow).
--
-- The rate limit is GCRA, a token bucket kept as one timestamp (the
-- theoretical arrival time) per user and workspace: a request is let
-- through when that time is at most the tolerance (burst - 1 intervals)
-- ahead of now, and moves it one interval on. A retried request with a
-- known idempotency key is not counted.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1 then return {'err_ws', '', '0'} end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  local prev = redis.call('GET', KEYS[5])
  if prev then return {'dup', prev, '0'} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[3], 'id', 'destroyedAt')
local interval = tonumber(ARGV[9])
local newTat = 0
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[6]) or '0')
  if tat < now then tat = now end
  local tolerance = tonumber(ARGV[10])
  if tat - now > tolerance then
    return {'err_rate', string.format('%d', tat - now - tolerance), '0'}
  end
  newTat = tat + interval
end
local created = '0'
if not s[1] then
  if ARGV[3] ~= '1' then return {'err_session', '', '0'} end
  local most = tonumber(ARGV[11] or '0')
  if most > 0 and redis.call('ZCARD', KEYS[2]) >= most then return {'err_sessions', '', '0'} end
  local m = redis.call('HMGET', KEYS[1], 'agent', 'sandboxId', 'agents')
  local agent = ARGV[8]
  if agent == '' then agent = m[1] or '' end
  -- A session's own agent must be one the workspace's admin allows.
  if agent ~= (m[1] or '') and not string.find(',' .. (m[3] or '') .. ',', ',' .. agent .. ',', 1, true) then
    return {'err_agent', '', '0'}
  end
  redis.call('HSET', KEYS[3], 'id', ARGV[2], 'agent', agent, 'createdAt', now, 'sandboxId', m[2] or '')
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  created = '1'
  wsappend(KEYS[7], KEYS[8], KEYS[10], ARGV[7], tonumber(ARGV[12]), ARGV[13], now, t, 'session.created',
    cjson.encode({sessionId = ARGV[2], agent = agent}))
elseif s[2] and ARGV[1] ~= 'destroy' then
  return {'err_destroyed', '', '0'}
end
local id = redis.call('XADD', KEYS[4], '*', 'k', ARGV[1], 'sid', ARGV[2], 'user', ARGV[4], 'text', ARGV[5], 'at', now)
if ttl > 0 then redis.call('SET', KEYS[5], id, 'PX', ttl) end
if interval > 0 then redis.call('SET', KEYS[6], string.format('%d', newTat), 'PX', math.ceil(newTat - now) + 1000) end
if ARGV[1] == 'prompt' then
  wsappend(KEYS[7], KEYS[8], KEYS[10], ARGV[7], tonumber(ARGV[12]), ARGV[13], now, t, 'prompt.queued',
    cjson.encode({promptId = id, sessionId = ARGV[2], userId = ARGV[4], text = ARGV[5], queuedAt = now,
      position = queuedCount(KEYS[4], KEYS[9], ARGV[2])}))
end
redis.call('PUBLISH', ARGV[7], '!inbox')
return {'ok', id, created}
