-- A running task reports its progress (current_task.set_progress): one HSET of its own key, never its result record.
-- Written only while the task is in flight under the calling child (a task already acked, failed, retried or given
-- back writes nothing) and, for a task that stores results, while its record is not final (a redelivered task that
-- finished before its ack does not report again).
-- KEYS[1] in-flight hash, KEYS[2] progress hash N:progress:<id>, KEYS[3] its result record (only for a task that
-- stores results)
-- ARGV[1] field "<pid>:<seq>", ARGV[2] ttl in milliseconds, ARGV[3] the value (msgpack {done, total, info})
-- Returns 1 when written, 0 when refused.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if KEYS[3] and FINAL[redis.call('HGET', KEYS[3], 'status') or ''] then return 0 end
redis.call('HSET', KEYS[2], 'v', ARGV[3], 'at', now_text())
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
