-- Counts a workspace against the user who creates it (see
-- Log.ReserveWorkspace): KEYS[1] the user's set of workspaces; ARGV[1] the
-- workspace, ARGV[2] the cap.
-- Returns 1 when the workspace was counted already, 2 when it is now, 0
-- when the user already has the cap's worth of others.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 2
