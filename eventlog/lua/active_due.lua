-- Returns Redis's time (ms) and up to ARGV[1] workspaces of the active
-- index (KEYS[1]) that are due: scored at or before now, oldest first
-- (see Store.DueActive).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
table.insert(due, 1, string.format('%d', now))
return due
