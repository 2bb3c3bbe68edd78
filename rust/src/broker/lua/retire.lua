-- A worker daemon stops: fold its counters into the retired totals and forget it, in one step, so a reader
-- summing retired + registered daemons never counts it twice nor misses it.
-- KEYS[1] daemons set, KEYS[2] the retired counters (N:stats:retired), KEYS[3] its counters (N:stats:<daemon>),
-- KEYS[4] its info (N:daemon:<daemon>)
-- ARGV[1] daemon id
retire_stats(KEYS[2], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
return 1
