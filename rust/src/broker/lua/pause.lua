-- Pause or resume a queue for every daemon: claim.lua and claim_limited.lua skip the queues in the paused set.
-- KEYS[1] the paused set N:paused, KEYS[2] the queue's bell
-- ARGV[1] 'pause' or 'resume', ARGV[2] the queue name
-- Returns 1 when the queue's state changed, 0 when it already was so.
-- NOTE: a resume rings the bell: an idle child wakes and claims at once, and a claim that leaves work behind rings
-- again, so the wake-up cascades to the other idle children (as after a push). Pushes and eta promotion never look
-- at the set: a paused queue keeps filling.
if ARGV[1] == 'pause' then
  return redis.call('SADD', KEYS[1], ARGV[2])
end
local removed = redis.call('SREM', KEYS[1], ARGV[2])
if removed == 1 then ring(KEYS[2]) end
return removed
