-- Reads a workspace's presence reports (see Store.PresenceReports) and
-- deletes those of nodes that stopped reporting: a report whose "exp"
-- (ms) is more than ARGV[1] ms in the past, by Redis's clock. A node
-- refreshes its reports long before they expire, so only a dead node's
-- are deleted; the grace covers clocks that disagree. Reports that are not
-- JSON with a numeric exp are left alone.
--
-- KEYS[1] presence hash; ARGV[1] grace ms. It returns the remaining
-- fields and values, flat.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local ok, v = pcall(cjson.decode, all[i + 1])
  if ok and type(v) == 'table' and type(v.exp) == 'number' and v.exp + grace < now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
