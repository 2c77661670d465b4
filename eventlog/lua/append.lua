#!lua
-- The only writer of session streams; see appendScript in append.go.
local st1 = redis.call('HMGET', KEYS[3], 'n', 'gen', 'tok', 'rcpt')
if st1[3] == ARGV[4] and st1[4] then
  return cjson.decode(st1[4])
end
local err = stale()
if err then return err end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxlen = tonumber(ARGV[3])
local out = {now}
local a = 5
local k = 2
while a <= #ARGV do
  local sid = ARGV[a]
  local nstate = tonumber(ARGV[a + 1])
  a = a + 2
  local stream, state = KEYS[k], KEYS[k + 1]
  k = k + 2
  local st = st1
  if k > 4 then
    st = redis.call('HMGET', state, 'n', 'gen')
  end
  local last = tonumber(st[1] or '0')
  local gen = st[2]
  if not gen then
    gen = string.format('%x', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  end
  local set = {'n', '', 'gen', gen}
  for i = 1, nstate do
    set[#set + 1] = ARGV[a]
    set[#set + 1] = ARGV[a + 1]
    a = a + 2
  end
  local nrec = tonumber(ARGV[a])
  a = a + 1
  local first = last + 1
  local src = false
  for i = 1, nrec do
    last = last + 1
    local idx = string.format('%d', last)
    local typ, body, source = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    a = a + 3
    local fields = {'t', typ, 'd', body, 'ts', now, 'ep', ARGV[1]}
    if source ~= '' then
      fields[#fields + 1] = 'src'
      fields[#fields + 1] = source
      src = source
    end
    if maxlen > 0 then
      redis.call('XADD', stream, 'MAXLEN', '~', maxlen, idx .. '-0', unpack(fields))
    else
      redis.call('XADD', stream, idx .. '-0', unpack(fields))
    end
    redis.call('PUBLISH', ARGV[2], sid .. '\n' .. idx .. '\n' .. gen .. '\n' .. now .. '\n' .. typ .. '\n' .. ARGV[1] .. '\n' .. source .. '\n' .. body)
  end
  set[2] = string.format('%d', last)
  if src then
    set[#set + 1] = 'src'
    set[#set + 1] = src
  end
  out[#out + 1] = gen
  out[#out + 1] = first
  if k == 4 and a > #ARGV then
    -- One part, the common case: its receipt goes with its state.
    set[#set + 1] = 'tok'
    set[#set + 1] = ARGV[4]
    set[#set + 1] = 'rcpt'
    set[#set + 1] = cjson.encode(out)
  end
  redis.call('HSET', state, unpack(set))
end
if k > 4 then
  redis.call('HSET', KEYS[3], 'tok', ARGV[4], 'rcpt', cjson.encode(out))
end
return out
