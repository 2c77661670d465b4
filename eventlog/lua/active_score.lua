-- Sets a workspace's score in the active index (see eventlog/active.go):
-- the time, by Redis's clock (ms), at which pollers should look at it.
--
-- KEYS[1] the active index; ARGV[1] mode, ARGV[2] workspace, ARGV[3] ms
-- from now. Modes:
--   mark    add it, due now, unless it is there (work was accepted)
--   lease   its owner holds it until then: move it later, never earlier,
--           and only while it is there
--   handoff its owner let go: due now, only while it is there
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = now + tonumber(ARGV[3])
if ARGV[1] == 'mark' then
  return redis.call('ZADD', KEYS[1], 'NX', score, ARGV[2])
elseif ARGV[1] == 'lease' then
  return redis.call('ZADD', KEYS[1], 'XX', 'GT', score, ARGV[2])
elseif ARGV[1] == 'handoff' then
  return redis.call('ZADD', KEYS[1], 'XX', score, ARGV[2])
end
return redis.error_reply('active_score: unknown mode ' .. tostring(ARGV[1]))
