-- Acknowledges inbox entries and deletes them, but only while the
-- caller's epoch is the workspace's fence (see Store.AckInbox): a paused
-- ex-owner acknowledges nothing. An acknowledged entry is done, so the
-- inbox keeps only what is pending or not read yet; whole stream nodes
-- before the oldest entry still needed are trimmed as well, so that
-- entries acknowledged before deletion existed go too.
--
-- KEYS[1] fence, KEYS[2] inbox; ARGV[1] epoch, ARGV[2] group, ARGV[3..]
-- the ids. It returns how many entries it acknowledged.
local err = stale()
if err then return err end
local n = 0
for i = 3, #ARGV do
  if redis.call('XACK', KEYS[2], ARGV[2], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[2], ARGV[i])
    n = n + 1
  end
end
-- The oldest entry still needed: the oldest pending one (always at or
-- before the group's last delivered entry), else the first one after the
-- last delivered. Everything older was delivered and acknowledged.
local minid
local p = redis.call('XPENDING', KEYS[2], ARGV[2])
if p[1] > 0 then
  minid = p[2]
else
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
    local name, last
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    if name == ARGV[2] and last then
      local ms, seq = string.match(last, '^(%d+)-(%d+)$')
      if ms then minid = ms .. '-' .. string.format('%d', tonumber(seq) + 1) end
    end
  end
end
if minid then redis.call('XTRIM', KEYS[2], 'MINID', minid) end
return n
