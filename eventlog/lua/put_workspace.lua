-- Creates or updates a workspace's settings (Store.PutWorkspace), unless
-- its id is deleted: marked deleted, tombstoned (finish_delete.lua), or
-- left with sessions and no settings (a deletion finished before
-- tombstones): then nothing changes and the reply is -1. Until a purge,
-- the old sessions and their history would come back with it.
-- KEYS[1] settings, KEYS[2] sessions zset; ARGV[1] now (ms), ARGV[2..7]
-- sandboxUrl, sandboxToken, sandboxId, agent, agents, permissionPolicy,
-- speakerLabels ("" keeps the stored one). Returns 1 when created, 0 when updated.
if redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local created = redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[1])
redis.call('HSET', KEYS[1], 'sandboxUrl', ARGV[2], 'sandboxToken', ARGV[3], 'sandboxId', ARGV[4],
  'agent', ARGV[5], 'agents', ARGV[6], 'updatedAt', ARGV[1])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'permissionPolicy', ARGV[7]) end
if ARGV[8] and ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'speakerLabels', ARGV[8]) end
return created
