-- Return the in-flight tasks of daemons whose heartbeat expired (their delivery counted), then forget them.
-- KEYS[1] daemons set
-- ARGV[1] key prefix, ARGV[2] max deliveries, ARGV[3] reaper id, ARGV[4] failed bound
-- Returns {daemons reaped, tasks requeued}.
local prefix = ARGV[1]
local daemons, tasks = 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. ':hb:' .. id) == 0 then
    local inflight = prefix .. ':inflight:' .. id
    local all = redis.call('HGETALL', inflight)
    for _, p in ipairs(newest_first(all, '', nil)) do
      tasks = tasks + give_back(prefix, p[4], true, tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]),
        'worker daemon ' .. id .. ' died while running it')
    end
    -- broadcasts relayed to the dead daemon are dropped: they were meant for its children only
    redis.call('DEL', inflight, prefix .. ':bcast:' .. id, prefix .. ':bell:bcast:' .. id)
    retire_stats(prefix, id)
    redis.call('SREM', KEYS[1], id)
    daemons = daemons + 1
  end
end
return {daemons, tasks}
