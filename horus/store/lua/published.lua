-- A message for the job was just published: the sweeper publishes it again should it never
-- start; the retry it served (due by now) is done, a newer one stays.
-- KEYS: job, leases, retries, queued ; ARGV: prefixes..., id, now
redis.call('ZADD', K.queued, ARGV[5], ARGV[4])
local due = redis.call('ZSCORE', K.retries, ARGV[4])
if due and tonumber(due) <= tonumber(ARGV[5]) then redis.call('ZREM', K.retries, ARGV[4]) end
return 1
