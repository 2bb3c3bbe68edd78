-- Acknowledge finished tasks and claim the next ones, strict priority, in one round trip.
-- KEYS[1] in-flight hash of this daemon
-- KEYS[2 .. n+1] queue lists in priority order; KEYS[n+2 .. 2n+1] their bells; KEYS[2n+2] the registered daemons;
-- KEYS[2n+3] the paused queues N:paused (a queue named there is skipped; broadcasts are never paused)
-- ARGV[1] field prefix "<pid>:", ARGV[2] first seq to assign, ARGV[3] max tasks to claim,
-- ARGV[4] number of acks k, ARGV[5 .. 4+k] acked seqs, ARGV[5+k .. 4+k+n] queue names, ARGV[5+k+n] daemon id
-- Returns {} when every queue is empty, {-2} when the daemon is not registered (nothing claimed), else
-- {queue index (0-based), element, ...}.
-- NOTE: a daemon a reaper took for dead (its parent stalled past the heartbeat timeout) had its in-flight hash
-- walked and deleted; a claim into it now would sit where no reaper looks again. Its parent's next heartbeat
-- registers it again (heartbeat.lua), and claims go on from there.
local prefix = ARGV[1]
local seq = tonumber(ARGV[2])
-- NOTE: seqs are formatted with '%d', not `..`: Lua prints a number with '%.14g', which for a child's 14-digit seqs
-- (consumer.rs `seq_base`) goes through glibc's multi-precision float printing, about 0.15 us per task of Redis CPU
local max = tonumber(ARGV[3])
local nacks = tonumber(ARGV[4])
-- NOTE: in chunks: unpack() of more than ~8000 values fails ("too many results to unpack"), and a child that
-- started thousands of async tasks at once acks as many in one claim
for lo = 1, nacks, 1000 do
  local fields = {}
  for i = lo, math.min(nacks, lo + 999) do fields[#fields + 1] = prefix .. ARGV[4 + i] end
  redis.call('HDEL', KEYS[1], unpack(fields))
end
if max < 1 then return {} end
local n = (#KEYS - 3) / 2
if redis.call('SISMEMBER', KEYS[2 * n + 2], ARGV[#ARGV]) == 0 then return {-2} end
-- NOTE: one read of the paused set per call, not one per queue (nothing paused: one EXISTS, `paused` nil)
local paused = paused_set(KEYS[2 * n + 3])
for i = 1, n do
  local items = not (paused and paused[ARGV[4 + nacks + i]]) and redis.call('LPOP', KEYS[1 + i], max)
  if items then
    local queue = ARGV[4 + nacks + i]
    for lo = 1, #items, 500 do
      local pairs_ = {}
      for j = lo, math.min(#items, lo + 499) do
        pairs_[#pairs_ + 1] = prefix .. string.format('%d', seq + j - 1)
        pairs_[#pairs_ + 1] = queue .. '\n' .. items[j]
      end
      redis.call('HSET', KEYS[1], unpack(pairs_))
    end
    if redis.call('LLEN', KEYS[1 + i]) > 0 then ring(KEYS[1 + n + i]) end
    table.insert(items, 1, i - 1)
    return items
  end
end
return {}
