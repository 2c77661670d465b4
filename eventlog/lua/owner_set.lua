-- Writes a workspace's owner record for the caller, only while its epoch
-- is the workspace's fence (an owner that lost the fence before it got
-- here, as after Redis lost writes, must not overwrite the record of the
-- one that holds it): KEYS[1] fence, KEYS[2] owner record, ARGV[1] epoch,
-- ARGV[2] node, ARGV[3] since, ARGV[4] health, ARGV[5] TTL (ms).
local err = stale()
if err then return err end
redis.call('HSET', KEYS[2], 'node', ARGV[2], 'epoch', ARGV[1], 'since', ARGV[3], 'health', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
