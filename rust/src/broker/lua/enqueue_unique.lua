-- Enqueue a unique task: take its lock and, only when the lock was free, push it as enqueue.lua (RPUSH and the bell)
-- or enqueue_eta.lua (ZADD NX, PUBLISH when it became the earliest) does. One script, so a producer that dies
-- halfway can neither hold a lock without a task nor push a duplicate.
-- KEYS[1] lock N:unique:<key> (string: the id of the task holding it, PX ttl)
-- KEYS[2] queue list N:<queue>, or eta zset N:eta:<queue> for an eta task
-- KEYS[3] bell list N:bell:<queue>
-- ARGV[1] task id, ARGV[2] lock ttl in milliseconds (counted from when it is due, for an eta task), ARGV[3] payload,
-- ARGV[4] '' for a task due now, else its due time: "+<seconds>" from now on Redis's clock, or a unix time,
-- ARGV[5] eta channel
-- Returns {1, task id} when enqueued, {0, id of the task holding the lock} when it was a duplicate.
local ttl = tonumber(ARGV[2])
local due = nil
if ARGV[4] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  if string.sub(ARGV[4], 1, 1) == '+' then
    due = now + tonumber(string.sub(ARGV[4], 2))
  else
    due = tonumber(ARGV[4])
  end
  -- NOTE: an eta task holds its lock while it waits too
  ttl = ttl + math.max(0, math.ceil((due - now) * 1000))
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ttl) then
  return {0, redis.call('GET', KEYS[1])}
end
if due == nil then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  ring(KEYS[3])
else
  add_eta(KEYS[2], string.format('%.6f', due), ARGV[3], ARGV[5])
end
return {1, ARGV[1]}
