-- Register a worker daemon and refresh its heartbeat.
-- KEYS[1] daemons set, KEYS[2] heartbeat key
-- ARGV[1] daemon id, ARGV[2] info (JSON), ARGV[3] TTL in milliseconds
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local t = redis.call('TIME')
return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
