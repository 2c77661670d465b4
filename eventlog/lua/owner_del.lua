-- Removes a workspace's owner record if it is still the caller's:
-- KEYS[1] owner record, ARGV[1] epoch.
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
