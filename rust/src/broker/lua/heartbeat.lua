-- Register a worker daemon and refresh its heartbeat.
-- KEYS[1] daemons set, KEYS[2] heartbeat key
-- ARGV[1] daemon id, ARGV[2] info (JSON), ARGV[3] TTL in milliseconds, ARGV[4] '1' when it registered before
-- Returns {server time "<s>.<us>", 1 when a reaper had taken the daemon for dead (it registers again now), else 0}.
-- NOTE: registering again is what lets its children claim again (claim.lua refuses an unregistered daemon), so the
-- tasks they claim from now on sit where reapers look.
local reaped = 0
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 and ARGV[4] == '1' then reaped = 1 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return {now_text(), reaped}
