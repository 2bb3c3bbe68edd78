-- Claim one fire slot of a schedule and, when the claim is won, enqueue the task and ring its queue's bell.
-- Claim and push happen in one script, so a scheduler that dies between them cannot lose (or double) a fire.
-- KEYS[1] claim key N:sched:<schedule id>:<slot> (string, EX), KEYS[2] queue list N:<queue>, KEYS[3] its bell
-- ARGV[1] id of the claiming scheduler (stored in the claim, for operators), ARGV[2] claim ttl in seconds,
-- ARGV[3] the queue element (the task payload)
-- Returns 1 when this call fired the slot, 0 when another scheduler already had.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[3])
ring(KEYS[3])
return 1
