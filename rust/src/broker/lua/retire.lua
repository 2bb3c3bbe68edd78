-- A worker daemon stops: fold its counters into the retired totals and forget it, in one step, so a reader
-- summing retired + registered daemons never counts it twice nor misses it.
-- KEYS[1] daemons set
-- ARGV[1] key prefix, ARGV[2] daemon id
retire_stats(ARGV[1], ARGV[2])
redis.call('SREM', KEYS[1], ARGV[2])
return 1
