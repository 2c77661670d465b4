-- Reads inbox entries into the owner's consumer, but only while the
-- caller's epoch is the workspace's fence; idempotent, so that a lost
-- reply loses nothing (see Store.ReadInbox).
--
-- KEYS[1] fence, KEYS[2] inbox; ARGV[1] epoch, ARGV[2] group, ARGV[3]
-- consumer, ARGV[4] count, ARGV[5] the last id the owner knows it
-- received. It returns XREADGROUP's reply.
local err = stale()
if err then return err end
local mine = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], ARGV[5])
if mine and mine[1] and #mine[1][2] > 0 then
  return mine
end
return redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '>')
