-- Settle one claimed task that will not simply be acknowledged: record it failed, or re-enqueue it
-- at the end of its queue (a soft-timeout retry). Also acknowledges other finished seqs.
-- KEYS[1] in-flight hash
-- ARGV[1] field prefix "<pid>:", ARGV[2] seq, ARGV[3] mode "fail" | "retry", ARGV[4] key prefix,
-- ARGV[5] queue name, ARGV[6] payload (retry: the new payload), ARGV[7] reason, ARGV[8] traceback,
-- ARGV[9] worker id, ARGV[10] failed list bound, ARGV[11 ..] other acked seqs
-- Idempotent: a task no longer in flight (this call already ran, its reply was lost) is left alone.
-- Returns 1 when settled now, 0 when it was already settled.
for i = 11, #ARGV do redis.call('HDEL', KEYS[1], ARGV[1] .. ARGV[i]) end
local field = ARGV[1] .. ARGV[2]
local entry = redis.call('HGET', KEYS[1], field)
if not entry then return 0 end
local deliveries = 0
local nl = string.find(entry, '\n', 1, true)
if nl then deliveries = split(string.sub(entry, nl + 1)) end
redis.call('HDEL', KEYS[1], field)
if ARGV[3] == 'retry' then
  redis.call('RPUSH', ARGV[4] .. ':' .. ARGV[5], ARGV[6])
  ring(ARGV[4] .. ':bell:' .. ARGV[5])
else
  push_failed(ARGV[4], ARGV[5], record(ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], deliveries + 1),
    tonumber(ARGV[10]))
end
return 1
