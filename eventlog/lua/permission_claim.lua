-- Decides the answer to a permission request, first answer wins, and puts
-- it in the inbox for the owner, in one step (see Store.ClaimPermission).
--
-- KEYS: meta, session hash, the session's permissions hash, inbox
-- ARGV: request id, option id ("" for the outcome cancelled), resolution
-- JSON, sid, user, channel
--
-- Returns {status, body, inbox id}: ok (body: the resolution), resolved
-- (body: the resolution that won before), not_found, invalid_option
-- (body: the request, with its optionIds), err_ws, err_session,
-- err_destroyed.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1 then return {'err_ws', '', ''} end
local s = redis.call('HMGET', KEYS[2], 'id', 'destroyedAt')
if not s[1] then return {'err_session', '', ''} end
local req = redis.call('HGET', KEYS[3], 'r:' .. ARGV[1])
if not req then return {'not_found', '', ''} end
local prev = redis.call('HGET', KEYS[3], 'a:' .. ARGV[1])
if prev then return {'resolved', prev, ''} end
if s[2] then return {'err_destroyed', '', ''} end
if ARGV[2] ~= '' then
  local r = cjson.decode(req)
  local offered = false
  for _, o in ipairs(r['optionIds'] or {}) do
    if o == ARGV[2] then offered = true end
  end
  if not offered then return {'invalid_option', req, ''} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[3], 'a:' .. ARGV[1], ARGV[3])
local id = redis.call('XADD', KEYS[4], '*', 'k', 'permission', 'sid', ARGV[4], 'user', ARGV[5], 'text', ARGV[3], 'at', now)
redis.call('PUBLISH', ARGV[6], '!inbox')
return {'ok', ARGV[3], id}
