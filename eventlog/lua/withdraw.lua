-- Withdraws a prompt not yet dispatched (Store.Withdraw), decided against
-- the owner's dispatch record in one step: the session stream's state
-- names the prompts dispatched (last_inbox, disp), which append.lua writes
-- in the same script that appends the prompt's chat.user, before the
-- prompt is sent. A withdrawn prompt's id goes to the state's wd list,
-- which append.lua checks: a dispatch after this script fails, and a
-- withdrawal after a dispatch answers 'dispatched'.
--
-- KEYS: meta, inbox, session stream state, workspace stream, its state,
-- fence
-- ARGV: prompt id, sid, user, admin (1/0), channel, workspace stream
-- maxlen, entry tag
--
-- Returns {status, already}: ok (already 1: withdrawn before, nothing
-- appended), not_found, dispatched, forbidden, err_ws.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'deletedAt') == 1 then return {'err_ws', '0'} end
local id, sid = ARGV[1], ARGV[2]
local st = redis.call('HMGET', KEYS[3], 'last_inbox', 'disp', 'wd')
local function has(list, x) return list and string.find(' ' .. list .. ' ', ' ' .. x .. ' ', 1, true) end
local dispatched = st[1] == id or has(st[2], id)
local e = redis.call('XRANGE', KEYS[2], id, id)
if #e == 0 then
  if dispatched then return {'dispatched', '0'} end
  if has(st[3], id) then return {'ok', '1'} end
  return {'not_found', '0'}
end
local f = e[1][2]
local k, s, user = nil, nil, nil
for i = 1, #f, 2 do
  if f[i] == 'k' then k = f[i + 1] elseif f[i] == 'sid' then s = f[i + 1] elseif f[i] == 'user' then user = f[i + 1] end
end
if k ~= 'prompt' or s ~= sid then return {'not_found', '0'} end
if ARGV[4] ~= '1' and user ~= ARGV[3] then return {'forbidden', '0'} end
if dispatched then return {'dispatched', '0'} end
if has(st[3], id) then return {'ok', '1'} end
-- The latest 256 withdrawals: the owner skips a withdrawn prompt when it
-- comes to it, in inbox order, long before.
local ids = {}
for x in string.gmatch(st[3] or '', '%S+') do ids[#ids + 1] = x end
ids[#ids + 1] = id
while #ids > 256 do table.remove(ids, 1) end
redis.call('HSET', KEYS[3], 'wd', table.concat(ids, ' '))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
wsappend(KEYS[4], KEYS[5], KEYS[6], ARGV[5], tonumber(ARGV[6]), ARGV[7], now, t, 'prompt.withdrawn',
  cjson.encode({promptId = id, sessionId = sid, userId = user, by = ARGV[3], withdrawnAt = now}))
return {'ok', '0'}
