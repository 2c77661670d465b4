-- Sets hash fields only while the caller's epoch is the workspace's
-- fence: KEYS[1] fence, KEYS[2] hash, ARGV[1] epoch, then field, value
-- pairs.
local err = stale()
if err then return err end
local args = {}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(args))
return 1
