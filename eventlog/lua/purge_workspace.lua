-- Removes every key of a deleted workspace, in one step
-- (Store.PurgeWorkspace). KEYS[1] settings, KEYS[2] sessions zset,
-- KEYS[3] lock, KEYS[4] fence, KEYS[5] owner, KEYS[6] inbox, KEYS[7]
-- presence; ARGV[1] the workspace's key prefix ({ws:ID}:), ARGV[2..] the
-- keys a SCAN of its tag found (idempotency, rate and quota keys, which
-- no set lists, and any other). Every key carries the workspace's hash tag,
-- so on a Redis Cluster they are all in one slot.
--
-- Only a workspace whose deletion finished, and that no owner holds, is
-- purged: its owner destroyed the sessions and let it go, so nothing
-- appends to it any more; a paused ex-owner that still thinks it owns it
-- finds the fence gone and its fenced writes refused as stale (before any
-- head check, so it never reads the emptied streams as a rewind).
-- Returns 'ok', 'none' (nothing of it is stored), 'live' (not deleted),
-- 'deleting' (its deletion is not finished) or 'busy' (an owner holds it).
local created = redis.call('HEXISTS', KEYS[1], 'createdAt') == 1
local deleted = redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1
if created and not deleted then return 'live' end
if created then return 'deleting' end
if not deleted and redis.call('EXISTS', KEYS[2], KEYS[4], KEYS[6]) == 0 then return 'none' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'busy' end
local p = ARGV[1]
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  redis.call('DEL', p .. 'session:' .. sid, p .. 'events:' .. sid, p .. 'events:' .. sid .. ':state', p .. 'perms:' .. sid)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
for i = 2, #ARGV do
  if ARGV[i] ~= KEYS[3] then redis.call('DEL', ARGV[i]) end
end
return 'ok'
