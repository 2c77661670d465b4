-- Records a permission request of the agent (prefix r:), or that one was
-- done (prefix d:), while the caller's epoch is the workspace's fence (see
-- Store.PutPermission): the first value of a field stays (a request
-- ingested again after a failed append keeps its requestedAt and
-- expiresAt), and the stored one is returned.
--
-- KEYS: fence, the session's permissions hash
-- ARGV: epoch, field, value, expiry of the hash (ms)
local err = stale()
if err then return err end
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {redis.call('HGET', KEYS[2], ARGV[2])}
