-- Claims pending inbox entries for the owner's consumer, but only while
-- the caller's epoch is the workspace's fence (see Store.ClaimInbox): a
-- paused ex-owner claims nothing. When the scan is complete (the cursor
-- comes back 0-0) every entry pending is the caller's, and the consumers
-- of earlier owners (one per takeover, "<node>/<epoch>") that hold no
-- entry are deleted.
--
-- KEYS[1] fence, KEYS[2] inbox; ARGV[1] epoch, ARGV[2] group, ARGV[3]
-- consumer, ARGV[4] start, ARGV[5] count. It returns XAUTOCLAIM's reply.
local err = stale()
if err then return err end
local r = redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, ARGV[4], 'COUNT', ARGV[5])
if r[1] == '0-0' then
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[2], ARGV[2])) do
    local name, pending
    for j = 1, #c, 2 do
      if c[j] == 'name' then name = c[j + 1] elseif c[j] == 'pending' then pending = c[j + 1] end
    end
    if name and name ~= ARGV[3] and pending == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], name)
    end
  end
end
return r
