-- A new, unique fencing epoch for the workspace (AcquireEpoch in
-- append.go). KEYS[1] is the fence, ARGV[1] a random number below 2048.
--
-- An epoch is (high * 2048 + random), high the larger of the stored
-- epoch's high part plus one and Redis's clock in milliseconds. A fence
-- INCR that a failover or a lossy restart lost would hand the same number
-- to the next owner; this cannot: the lost epoch's high part was taken
-- earlier, on a clock that the next acquisition's clock has passed (a
-- takeover waits out the lock's TTL, seconds), and its random part differs
-- in 2047 cases of 2048 even when it did not. Epochs still grow with every
-- acquisition on one history, and stay below 2^53 (exact in Lua, and in
-- JavaScript, which reads them from events) until the year 4200.
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local high = math.floor(cur / 2048) + 1
if now > high then
  high = now
end
local ep = string.format('%.0f', high * 2048 + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], ep)
return ep
