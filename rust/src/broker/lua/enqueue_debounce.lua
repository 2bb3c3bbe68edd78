-- A debounced call (delay_with_options(debounce=)): the first call of a window adds the task to its queue's eta set,
-- due `window` seconds from now on Redis's clock; a call within the window replaces the pending call (its eta member
-- goes, the new one takes the same due time), so the task runs once, with the last call's arguments.
-- KEYS[1] window N:debounce:<key> (hash: payload, due, and the pending call's settlement; PX = the window's rest)
-- KEYS[2] eta zset N:eta:<queue>
-- ARGV[1] window in seconds, ARGV[2] payload (its meta carries a fresh id, so no other eta member has its bytes),
-- ARGV[3] eta channel, ARGV[4 .. 8] the call's settlement (lib.lua `settlement`; result key '' = no results)
-- A window is closed once its due time has passed on Redis's clock, or once its member left the eta set (promoted,
-- cancelled, purged): the call then opens a new window instead of replacing a member that is gone or about to run.
-- NOTE: so eta promotion (promote.lua) needs to know nothing of debounce, and costs every other task nothing.
-- A replaced call never runs: its result record (if it stores results) says "cancelled", error_type "Debounced".
-- Idempotent: a resend of the same call replaces its own member with the same bytes and settles nothing.
-- Returns {1 when it replaced a pending call else 0, due (string)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local old = redis.call('HMGET', KEYS[1], 'payload', 'due', 'result', 'ready', 'ttl', 'id')
local due = nil
if old[1] and tonumber(old[2]) and tonumber(old[2]) > now and redis.call('ZREM', KEYS[2], old[1]) == 1 then
  due = old[2]
  if old[6] ~= ARGV[8] then
    local s = {result = old[3] or '', ready = old[4] or '', ttl = tonumber(old[5]) or 1000, lock = '', id = old[6]}
    settle(s, 'cancelled', {'error_type', 'Debounced', 'error', 'replaced by a later call (task ' .. ARGV[8] ..
      ') within its debounce window'})
  end
end
local replaced = due and 1 or 0
if not due then due = string.format('%.6f', now + tonumber(ARGV[1])) end
add_eta(KEYS[2], due, ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], 'payload', ARGV[2], 'due', due, 'result', ARGV[4], 'ready', ARGV[5], 'ttl', ARGV[6],
  'id', ARGV[8])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((tonumber(due) - now) * 1000)))
return {replaced, due}
