-- Publish a worker daemon's task counters and its info (called just before heartbeat.lua).
-- KEYS[1] daemons set, KEYS[2] the daemon's stats hash, KEYS[3] the daemon's info hash
-- ARGV[1] daemon id, ARGV[2] '1' when an earlier publish succeeded, ARGV[3] info (JSON),
-- ARGV[4..] counter field, value, field, value... (totals since the daemon started, minus what a reaper took)
-- Returns 1 when the daemon was reaped since its last publish (nothing written: the reaper already folded the
-- last published counters into the retired totals; the caller subtracts them from now on), else 0.
if ARGV[2] == '1' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return 1
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[3], 'info', ARGV[3], 'seen', t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
return 0
