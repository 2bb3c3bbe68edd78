-- Enqueue a unique task: take its lock and, only when the lock was free, push it exactly as the broker's
-- enqueue.lua (RPUSH, ring the bell) or enqueue_eta.lua (ZADD NX, PUBLISH when it became the earliest) does.
-- One script, so a producer that dies halfway can neither hold a lock without a task nor push a duplicate.
-- KEYS[1] lock <ns>:unique:<key> (string: the id of the task holding it, PX ttl)
-- KEYS[2] queue list <ns>:<queue>, or eta zset <ns>:eta:<queue> when ARGV[4] is not empty
-- KEYS[3] bell list <ns>:bell:<queue>: at most one token (lib.lua's `ring`)
-- ARGV[1] task id, ARGV[2] lock ttl in milliseconds, ARGV[3] payload (wakaq._wakaq.encode_task, with meta),
-- ARGV[4] due unix time for an eta task ('' for none), ARGV[5] eta channel
-- Returns {1, task id} when enqueued, {0, id of the task holding the lock} when it was a duplicate.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('GET', KEYS[1])}
end
if ARGV[4] == '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  if redis.call('LLEN', KEYS[3]) == 0 then
    redis.call('RPUSH', KEYS[3], '1')
  end
else
  redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[3])
  local first = redis.call('ZRANGE', KEYS[2], 0, 0)
  if first[1] == ARGV[3] then
    redis.call('PUBLISH', ARGV[5], KEYS[2])
  end
end
return {1, ARGV[1]}
