#!lua
-- The only writer of session streams; see appendScript in append.go.
local st1 = redis.call('HMGET', KEYS[3], 'n', 'gen', 'tok', 'rcpt')
if st1[3] == ARGV[4] and st1[4] then
  return cjson.decode(st1[4])
end
local err = stale()
if err then return err end

-- Every part is checked before anything is written: the head its writer
-- saw acknowledged (a stream holding less lost acknowledged writes: new
-- entries would take the lost ones' indexes), and the prompt it
-- dispatches (one dispatched already must not be again).
local a, k = 5, 2
while a <= #ARGV do
  local sid, head, disp = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local nstate = tonumber(ARGV[a + 3])
  a = a + 4 + 2 * nstate
  local nrec = tonumber(ARGV[a])
  a = a + 1 + 3 * nrec
  if head ~= '' or disp ~= '' then
    local st = redis.call('HMGET', KEYS[k + 1], 'n', 'last_inbox', 'disp', 'wd')
    local n = tonumber(st[1] or '0')
    if head ~= '' and n < tonumber(head) then
      return redis.error_reply('TANDEMREWOUND ' .. sid .. ' ' .. string.format('%d', n) .. ' ' .. head)
    end
    if disp ~= '' and (st[2] == disp or (st[3] and string.find(' ' .. st[3] .. ' ', ' ' .. disp .. ' ', 1, true))) then
      return redis.error_reply('TANDEMDUP ' .. sid .. ' dispatch ' .. disp)
    end
    -- A prompt its sender withdrew (lua/withdraw.lua) is never
    -- dispatched: the withdrawal and this check are one script each, so
    -- exactly one of them wins.
    if disp ~= '' and st[4] and string.find(' ' .. st[4] .. ' ', ' ' .. disp .. ' ', 1, true) then
      return redis.error_reply('TANDEMWITHDRAWN ' .. sid .. ' ' .. disp)
    end
  end
  k = k + 2
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- ARGV[3] is "<session maxlen>/<workspace stream maxlen>" (or one number
-- for both); the workspace stream (~ws) is always bounded.
local maxlen = tonumber(ARGV[3])
local wsmax = maxlen
if not maxlen then
  local m1, m2 = string.match(ARGV[3], '^(%d+)/(%d+)$')
  maxlen, wsmax = tonumber(m1), tonumber(m2)
end
-- Every entry carries a few characters of its call's token: a cursor names
-- the entry at its index, not only the index (a rewound stream written
-- again holds other entries there).
local tag = string.sub(ARGV[4], 1, 6)
local out = {now}
a, k = 5, 2
local nparts = 0
while a <= #ARGV do
  local sid, disp = ARGV[a], ARGV[a + 2]
  local nstate = tonumber(ARGV[a + 3])
  a = a + 4
  local stream, state = KEYS[k], KEYS[k + 1]
  k = k + 2
  nparts = nparts + 1
  local st = redis.call('HMGET', state, 'n', 'gen', 'conn', 'src', 'disp')
  local last = tonumber(st[1] or '0')
  local gen = st[2]
  if not gen then
    gen = string.format('%x', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  end
  local set = {'n', '', 'gen', gen}
  local pconn, fresh = nil, false
  for i = 1, nstate do
    local f, v = ARGV[a], ARGV[a + 1]
    if f == 'conn' then pconn = v end
    if f == 'src' then fresh = true end -- a writer starting on a new source
    set[#set + 1] = f
    set[#set + 1] = v
    a = a + 2
  end
  local nrec = tonumber(ARGV[a])
  a = a + 1
  -- Records whose source position (the ACP SSE id, numbered 1, 2, 3… per
  -- connection) is at or below the stored one of the same connection are
  -- in the stream already: a late execution of an earlier call, or a
  -- re-attach that read an older position. They, and the records without
  -- a position that followed them, are skipped, not appended again.
  local skip = 0
  local stored = nil
  if not fresh and st[4] and st[4] ~= '' and (pconn == nil or pconn == st[3]) then
    stored = tonumber(st[4])
  end
  if stored then
    for i = 1, nrec do
      local pos = tonumber(ARGV[a + 3 * (i - 1) + 2])
      if pos then
        if pos <= stored then skip = i else break end
      end
    end
    while skip > 0 and skip < nrec and ARGV[a + 3 * skip + 2] == '' do
      skip = skip + 1
    end
  end
  local first = last + 1
  local src = false
  local ml = maxlen
  if sid == '~ws' then ml = wsmax end
  for i = 1, nrec do
    local typ, body, source = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    a = a + 3
    if i > skip then
      last = last + 1
      local idx = string.format('%d', last)
      local fields = {'t', typ, 'd', body, 'ts', now, 'ep', ARGV[1], 'tk', tag}
      if source ~= '' then
        fields[#fields + 1] = 'src'
        fields[#fields + 1] = source
        src = source
      end
      if ml > 0 then
        redis.call('XADD', stream, 'MAXLEN', '~', ml, idx .. '-0', unpack(fields))
      else
        redis.call('XADD', stream, idx .. '-0', unpack(fields))
      end
      redis.call('PUBLISH', ARGV[2], sid .. '\n' .. idx .. '\n' .. gen .. '\n' .. now .. '\n' .. typ .. '\n' .. ARGV[1] .. '\n' .. source .. '\n' .. tag .. '\n' .. body)
    end
  end
  set[2] = string.format('%d', last)
  if src then
    set[#set + 1] = 'src'
    set[#set + 1] = src
  end
  if disp ~= '' then
    -- The latest 64 prompts dispatched, for the check above.
    local ids = {}
    for id in string.gmatch(st[5] or '', '%S+') do ids[#ids + 1] = id end
    ids[#ids + 1] = disp
    while #ids > 64 do table.remove(ids, 1) end
    set[#set + 1] = 'disp'
    set[#set + 1] = table.concat(ids, ' ')
  end
  out[#out + 1] = gen
  out[#out + 1] = first
  out[#out + 1] = skip
  local single = (k == 4 and a > #ARGV)
  if single then
    -- One part, the common case: its receipt goes with its state.
    set[#set + 1] = 'tok'
    set[#set + 1] = ARGV[4]
    set[#set + 1] = 'rcpt'
    set[#set + 1] = cjson.encode(out)
  end
  if nrec == 0 or skip < nrec then
    redis.call('HSET', state, unpack(set))
  elseif single then
    -- Everything was in the stream already: its state stays as it is
    -- (a late call must not move it back), but the receipt is kept.
    redis.call('HSET', state, 'tok', ARGV[4], 'rcpt', cjson.encode(out))
  end
end
if nparts > 1 then
  redis.call('HSET', KEYS[3], 'tok', ARGV[4], 'rcpt', cjson.encode(out))
end
return out
