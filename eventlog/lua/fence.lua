-- The fence check, the one copy shared by every script that writes for a
-- workspace's owner (scripts.go prepends it). KEYS[1] is the workspace's
-- fence and ARGV[1] the caller's epoch: stale() returns the stale-writer
-- error reply (decoded into ErrStaleWriter in errors.go) when they differ,
-- nil when the caller is the writer.
local function stale()
  local fence = redis.call('GET', KEYS[1])
  if fence ~= ARGV[1] then
    return redis.error_reply('TANDEMSTALE epoch ' .. ARGV[1] .. ' fence ' .. tostring(fence))
  end
  return nil
end
