-- Settle one claimed task, with everything that goes with it, in one script: acknowledge it ("done"), record it
-- failed ("fail"), re-enqueue it at the end of its queue ("retry": a soft-timeout retry, or a retry due now), or add
-- it to its queue's eta set ("eta": a retry with a backoff, due on Redis's clock). Its result record and uniqueness
-- lock are settled here too (lib.lua `settle`). Also acknowledges other finished seqs.
-- KEYS[1] in-flight hash, KEYS[2] the task's queue list, KEYS[3] its bell, KEYS[4] its failed list,
-- KEYS[5] its eta zset (mode "eta" only)
-- ARGV[1] field prefix "<pid>:", ARGV[2] seq, ARGV[3] mode "done" | "fail" | "retry" | "eta", ARGV[4] queue name,
-- ARGV[5] payload (retry, eta: the new payload), ARGV[6] reason (eta: seconds from now), ARGV[7] traceback
-- (eta: the eta channel), ARGV[8] worker id, ARGV[9] failed bound,
-- ARGV[10 .. 14] the task's settlement (lib.lua `settlement`), ARGV[15] the status its result record gets,
-- ARGV[16] m, ARGV[17 .. 16+m] field/value pairs stored with it, ARGV[17+m ..] other acked seqs
-- Idempotent: a task no longer in flight (this call already ran and its reply was lost, or a reaper gave it back to
-- its queue) is left alone, its record and lock too (a requeued copy still holds them).
-- NOTE: "eta" removes the in-flight entry and adds the retry in one script: a child killed at any point either
-- still has the task in flight (its parent requeues it) or has it waiting in the eta set, never neither or both.
-- Returns 1 when settled now, 0 when it was already settled.
local m = tonumber(ARGV[16])
for i = 17 + m, #ARGV do redis.call('HDEL', KEYS[1], ARGV[1] .. ARGV[i]) end
local field = ARGV[1] .. ARGV[2]
local entry = redis.call('HGET', KEYS[1], field)
if not entry then return 0 end
redis.call('HDEL', KEYS[1], field)
local mode = ARGV[3]
if mode == 'retry' then
  redis.call('RPUSH', KEYS[2], ARGV[5])
  ring(KEYS[3])
elseif mode == 'eta' then
  local t = redis.call('TIME')
  local due = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[6])
  add_eta(KEYS[5], string.format('%.6f', due), ARGV[5], ARGV[7])
elseif mode == 'fail' then
  local deliveries, payload = 0, entry
  local nl = string.find(entry, '\n', 1, true)
  if nl then deliveries, payload = split(string.sub(entry, nl + 1)) end
  push_failed(KEYS[4], record(ARGV[4], payload, ARGV[6], ARGV[7], ARGV[8], deliveries + 1), tonumber(ARGV[9]))
end
if ARGV[15] ~= '' then
  settle(settlement(10), ARGV[15], {unpack(ARGV, 17, 16 + m)})
end
return 1
