-- Finishes a deleted workspace's removal while the caller is its writer:
-- KEYS[1] fence, KEYS[2] settings, ARGV[1] epoch. The settings go, all
-- but deletedAt: the hash left is the workspace's tombstone (no
-- createdAt, so nothing reads it as a workspace), which keeps its id from
-- being created again over its old sessions and history until it is
-- purged (purge_workspace.lua).
local err = stale()
if err then return err end
local at = redis.call('HGET', KEYS[2], 'deletedAt')
if at then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'deletedAt', at)
end
return 1
