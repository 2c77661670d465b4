package workspace

import "github.com/redis/go-redis/v9"

// newFencedHSet returns a script that sets hash fields only while the
// caller's epoch is the workspace's fence: KEYS[1] fence, KEYS[2] hash,
// ARGV[1] epoch, then field, value pairs.
func newFencedHSet() *redis.Script {
	return redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('TANDEMSTALE')
end
local args = {}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(args))
return 1
`)
}
