-- Requeue one failed task (wakaq-failed requeue, the dashboard): remove exactly this failure record, push its task at
-- the end of its queue and ring the bell, and drop the task's result record so its new run can write one (first
-- writer wins would refuse it) and its handle reads "pending" again; one script, so nothing is lost or doubled.
-- KEYS[1] the failed list, KEYS[2] the queue list, KEYS[3] its bell
-- ARGV[1] the exact failure record, ARGV[2] the task payload, ARGV[3] its result key ('' = none), ARGV[4] its ready key
-- Returns 1 when requeued, 0 when the record was gone (requeued or dropped meanwhile).
if redis.call('LREM', KEYS[1], -1, ARGV[1]) ~= 1 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
ring(KEYS[3])
if ARGV[3] ~= '' then redis.call('DEL', ARGV[3], ARGV[4]) end
return 1
