-- Start a workflow (workflow.lua describes its hash): write its tree and start its root, in one script.
-- KEYS[1] the workflow's hash N:wf:<id>
-- ARGV[1] ttl ms, ARGV[2] its results hash, ARGV[3] its ready list, ARGV[4 ..] field/value pairs of its nodes
-- Returns 1 when started, 0 when a workflow with that id exists already.
local wf = KEYS[1]
if redis.call('EXISTS', wf) == 1 then return 0 end
redis.call('HSET', wf, 'status', 'running', 'ttl', ARGV[1], 'results', ARGV[2], 'ready', ARGV[3], 'at', now_text())
for from = 4, #ARGV, 200 do  -- NOTE: unpack's stack limit
  redis.call('HSET', wf, unpack(ARGV, from, math.min(from + 199, #ARGV)))
end
redis.call('PEXPIRE', wf, ARGV[1])
wf_activate(wf, 0, nil)
return 1
