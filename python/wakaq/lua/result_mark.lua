-- Write a task's result record (wakaq.results.mark). First writer wins: once the record holds a final status
-- (done, failed, cancelled: wakaq.results.FINAL) nothing overwrites it, so a task that wrote its result and then
-- crashed before its ack is redelivered, runs again, and its second write is refused.
-- KEYS[1] result hash <ns>:result:<id> (fields status, value, error_type, error, at)
-- KEYS[2] ready list <ns>:result:<id>:ready: one token per final write, for waiters (BLMOVE rotates it)
-- KEYS[3] (optional) the uniqueness lock <ns>:unique:<key>: deleted on a final status if it holds ARGV[4]
-- ARGV[1] status, ARGV[2] ttl in milliseconds, ARGV[3] '1' when the status is final, else '0',
-- ARGV[4] the task id (compared with the lock), ARGV[5..] field/value pairs to store with the status
-- Returns 1 when written, 0 when refused (a final status was there).
local final = ARGV[3] == '1'
if final and KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
local current = redis.call('HGET', KEYS[1], 'status')
if current == 'done' or current == 'failed' or current == 'cancelled' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if final then
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
