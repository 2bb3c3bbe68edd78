-- Cancel a running workflow: it reads cancelled at once, so no later step or callback starts (a step that ends now
-- finds it no longer running); the caller then removes its queued steps (python/wakaq/workflow.py).
-- KEYS[1] the workflow's hash; ARGV[1] the reason
-- Returns the status it had ('' when there is no such workflow); only a running one is changed.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'running' then
  wf_end(KEYS[1], 'cancelled', {'error_type', 'TaskCancelled', 'error', ARGV[1]})
end
return status
