-- Takes one request from a GCRA token bucket kept as one timestamp (the
-- theoretical arrival time), as enqueue.lua's prompt rate does, for the
-- other commands (see Quotas.Take).
--
-- KEYS: the bucket
-- ARGV: interval ms, tolerance ms (burst - 1 intervals), 'take' or
-- 'refund' (gives back a request that was refused after it was taken:
-- the bucket is as it was, and gone when it had been)
--
-- Returns 0 when the request is let through, else the milliseconds to
-- wait before one would be.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[3] == 'refund' then
  local back = tat - interval
  if back <= now then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], string.format('%d', back), 'PX', math.ceil(back - now) + 1000)
  end
  return 0
end
if tat < now then tat = now end
if tat - now > tolerance then
  return math.max(1, tat - now - tolerance)
end
local newTat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', newTat), 'PX', math.ceil(newTat - now) + 1000)
return 0
