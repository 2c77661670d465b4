-- Removes a deleted workspace's settings, unless it was created again
-- meanwhile, while the caller is its writer: KEYS[1] fence, KEYS[2]
-- settings, ARGV[1] epoch.
local err = stale()
if err then return err end
if redis.call('HEXISTS', KEYS[2], 'deletedAt') == 1 then redis.call('DEL', KEYS[2]) end
return 1
