-- Start a workflow (workflow.lua describes its hash): write its tree and start its root, in one script.
-- KEYS[1] the workflow's hash N:wf:<id>, KEYS[2] the index of recent workflows N:wf:recent
-- ARGV[1] ttl ms, ARGV[2] its results hash, ARGV[3] its ready list, ARGV[4] its id, ARGV[5] how many ids the index
-- keeps, ARGV[6 ..] field/value pairs of its nodes
-- Returns 1 when started, 0 when a workflow with that id exists already.
local wf = KEYS[1]
if redis.call('EXISTS', wf) == 1 then return 0 end
local at = now_text()
redis.call('HSET', wf, 'status', 'running', 'ttl', ARGV[1], 'results', ARGV[2], 'ready', ARGV[3], 'at', at)
for from = 6, #ARGV, 200 do  -- NOTE: unpack's stack limit
  redis.call('HSET', wf, unpack(ARGV, from, math.min(from + 199, #ARGV)))
end
redis.call('PEXPIRE', wf, ARGV[1])
-- NOTE: the index is bounded twice: the newest ARGV[5] ids only, and it expires with the longest-lived workflow it
-- names (ids of workflows that expired before it are skipped by its readers)
redis.call('ZADD', KEYS[2], at, ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
wf_activate(wf, 0, nil)
return 1
