-- Push one element at the end of a queue and ring its bell.
-- KEYS[1] queue list, KEYS[2] bell list
-- ARGV[1..n] elements
redis.call('RPUSH', KEYS[1], unpack(ARGV))
ring(KEYS[2])
return #ARGV
