-- A worker daemon stops: record the broadcasts its children did not run, fold its counters into the retired totals
-- and forget it, in one step, so a reader summing retired + registered daemons never counts it twice nor misses it,
-- and a broadcast (broadcast.lua pushes only to registered daemons) is either in its list and recorded here, or
-- was never handed to it.
-- KEYS[1] daemons set, KEYS[2] the retired counters (N:stats:retired), KEYS[3] its counters (N:stats:<daemon>),
-- KEYS[4] its info (N:daemon:<daemon>), KEYS[5] its broadcast list, KEYS[6] that list's bell,
-- KEYS[7] the failed broadcasts (N:failed:broadcast)
-- ARGV[1] daemon id, ARGV[2] failed bound
-- Returns the number of broadcasts recorded.
local reason = 'WorkerStopped: daemon ' .. ARGV[1] .. ' stopped before running this broadcast'
local n = record_broadcasts(KEYS[5], KEYS[6], KEYS[7], KEYS[2], 'bcast:' .. ARGV[1], reason, ARGV[1], tonumber(ARGV[2]))
retire_stats(KEYS[2], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
return n
