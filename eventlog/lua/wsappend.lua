-- Appends one entry to a workspace stream ({ws:ID}:events:~ws) for a
-- script any node runs (the enqueue and withdraw scripts; the owner writes
-- the stream through append.lua, under its fence). Entries are numbered
-- and published exactly as append.lua numbers and publishes them, so
-- readers and the doorbell cannot tell the writers apart; the epoch the
-- entry carries is the fence's current value. scripts.go prepends this
-- file to the scripts that use it.
local function wsappend(stream, state, fence, channel, maxlen, tag, now, t, typ, body)
  local st = redis.call('HMGET', state, 'n', 'gen')
  local n = tonumber(st[1] or '0') + 1
  local gen = st[2]
  if not gen then
    gen = string.format('%x', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  end
  local idx = string.format('%d', n)
  local ep = redis.call('GET', fence) or '0'
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, idx .. '-0', 't', typ, 'd', body, 'ts', now, 'ep', ep, 'tk', tag)
  redis.call('HSET', state, 'n', idx, 'gen', gen)
  redis.call('PUBLISH', channel, '~ws\n' .. idx .. '\n' .. gen .. '\n' .. now .. '\n' .. typ .. '\n' .. ep .. '\n\n' .. tag .. '\n' .. body)
end

-- The prompts of session sid waiting in the inbox: not dispatched (the
-- session state's last_inbox and disp) and not withdrawn (wd).
local function queuedCount(inbox, sstate, sid)
  local st = redis.call('HMGET', sstate, 'last_inbox', 'disp', 'wd')
  local done = ' ' .. (st[1] or '') .. ' ' .. (st[2] or '') .. ' ' .. (st[3] or '') .. ' '
  local n = 0
  for _, e in ipairs(redis.call('XRANGE', inbox, '-', '+', 'COUNT', 1000)) do
    local f = e[2]
    local k, s = nil, nil
    for i = 1, #f, 2 do
      if f[i] == 'k' then k = f[i + 1] elseif f[i] == 'sid' then s = f[i + 1] end
    end
    if k == 'prompt' and s == sid and not string.find(done, ' ' .. e[1] .. ' ', 1, true) then n = n + 1 end
  end
  return n
end
