-- The watchdog takes the deadlines of one shard that are due, leasing each for ARGV[2] ms so
-- that a watchdog that dies mid-way leaves them to the next. KEYS: 1 the shard's deadlines.
-- ARGV: 1 at most this many. Returns {member, due_ms, ...}; the work is the number due.
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), due[i]) end
return due
