-- Claim one fire slot of a schedule and, when the claim is won, enqueue the task and ring its queue's bell.
-- Claim and push happen in one script, so a scheduler that dies between them cannot lose (or double) a fire.
-- KEYS[1] claim key <prefix>:sched:<schedule id>:<slot> (string, EX)
-- KEYS[2] queue list <prefix>:<queue>
-- KEYS[3] bell list <prefix>:bell:<queue>: at most one token (the same rule as the broker's lib.lua `ring`)
-- ARGV[1] id of the claiming scheduler (stored in the claim, for operators)
-- ARGV[2] claim ttl in seconds
-- ARGV[3] the queue element: the task payload as encoded by wakaq._wakaq.encode_task(name, args, kwargs, 0)
-- Returns 1 when this call fired the slot, 0 when another scheduler already had.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[3])
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('RPUSH', KEYS[3], '1')
end
return 1
