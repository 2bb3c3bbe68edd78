-- Release a uniqueness lock when its task finished (done or failed): compare-and-delete, so a lock that expired
-- and was taken by a newer task is left alone.
-- KEYS[1] lock <ns>:unique:<key>
-- ARGV[1] the finished task's id
-- Returns 1 when deleted, 0 when the lock was gone or held by another task.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
