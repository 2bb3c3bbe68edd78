-- Settle one claimed task that will not simply be acknowledged: record it failed, re-enqueue it at the end of its
-- queue (a soft-timeout retry, or a retry due now), or add it to its queue's eta set (a retry with a backoff).
-- Also acknowledges other finished seqs.
-- KEYS[1] in-flight hash, KEYS[2] the task's queue list, KEYS[3] its bell, KEYS[4] its failed list,
-- KEYS[5] its eta zset (mode "eta" only)
-- ARGV[1] field prefix "<pid>:", ARGV[2] seq, ARGV[3] mode "fail" | "retry" | "eta", ARGV[4] queue name,
-- ARGV[5] payload (retry, eta: the new payload), ARGV[6] reason (eta: the due unix time), ARGV[7] traceback
-- (eta: the eta channel), ARGV[8] worker id, ARGV[9] failed list bound, ARGV[10 ..] other acked seqs
-- Idempotent: a task no longer in flight (this call already ran, its reply was lost) is left alone.
-- NOTE: "eta" removes the in-flight entry and adds the retry in one script: a child killed at any point either
-- still has the task in flight (its parent requeues it) or has it waiting in the eta set, never neither or both.
-- Returns 1 when settled now, 0 when it was already settled.
for i = 10, #ARGV do redis.call('HDEL', KEYS[1], ARGV[1] .. ARGV[i]) end
local field = ARGV[1] .. ARGV[2]
local entry = redis.call('HGET', KEYS[1], field)
if not entry then return 0 end
local deliveries = 0
local nl = string.find(entry, '\n', 1, true)
if nl then deliveries = split(string.sub(entry, nl + 1)) end
redis.call('HDEL', KEYS[1], field)
if ARGV[3] == 'retry' then
  redis.call('RPUSH', KEYS[2], ARGV[5])
  ring(KEYS[3])
elseif ARGV[3] == 'eta' then
  add_eta(KEYS[5], ARGV[6], ARGV[5], ARGV[7])
else
  push_failed(KEYS[4], record(ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], deliveries + 1), tonumber(ARGV[9]))
end
return 1
