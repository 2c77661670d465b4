-- Marks a workspace and its sessions deleted and tells its owner, in one
-- step. KEYS[1] settings, KEYS[2] sessions zset, KEYS[3] inbox; ARGV[1]
-- the session keys' prefix, ARGV[2] the doorbell channel.
-- Returns {'err_ws'} or {'ok', inbox id}.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1 then return {'err_ws'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  redis.call('HSETNX', ARGV[1] .. sid, 'destroyedAt', now)
end
redis.call('HSET', KEYS[1], 'deletedAt', now)
local id = redis.call('XADD', KEYS[3], '*', 'k', 'destroy_ws', 'at', now)
redis.call('PUBLISH', ARGV[2], '!inbox')
return {'ok', id}
