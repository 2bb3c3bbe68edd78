-- Drop failure records (wakaq-failed drop, the dashboard): one exact record, or whole failed lists.
-- KEYS[1 ..] failed lists
-- ARGV[1] the exact record to remove from KEYS[1] ('' = drop every list in KEYS)
-- Returns how many records were dropped.
if ARGV[1] ~= '' then
  return redis.call('LREM', KEYS[1], 1, ARGV[1])
end
local n = 0
for _, key in ipairs(KEYS) do
  n = n + redis.call('LLEN', key)
  redis.call('DEL', key)
end
return n
