-- Move due eta tasks to the front of their queues, atomically and bounded; report when the next is due.
-- KEYS[1 .. n] eta zsets, KEYS[n+1 .. 2n] their queue lists, KEYS[2n+1 .. 3n] their bells
-- ARGV[1] max tasks moved per call
-- Returns {moved, server now (string), next due (string, '' = none; 'now' = more are already due)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nowstr = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local n = #KEYS / 3
local budget = tonumber(ARGV[1])
local moved = 0
for i = 1, n do
  if budget <= 0 then break end
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', nowstr, 'LIMIT', 0, budget)
  if #due > 0 then
    -- LPUSH in reverse due order leaves the earliest at the very front
    for j = #due, 1, -1 do redis.call('LPUSH', KEYS[n + i], due[j]) end
    for j = 1, #due, 500 do
      redis.call('ZREM', KEYS[i], unpack(due, j, math.min(j + 499, #due)))
    end
    ring(KEYS[2 * n + i])
    moved = moved + #due
    budget = budget - #due
  end
end
local next = ''
for i = 1, n do
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if first[2] then
    local s = tonumber(first[2])
    if s <= now then next = 'now' break end
    if next == '' or s < tonumber(next) then next = first[2] end
  end
end
return {moved, nowstr, next}
