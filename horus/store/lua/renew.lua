-- Extend the lease of the attempt that owns the job; 0 once it owns it no more.
-- KEYS: job, leases, retries, queued ; ARGV: prefixes..., id, attempt, lease_until
if not owns(K, ARGV[5]) then return 0 end
redis.call('HSET', K.job, 'lease', ARGV[6])
redis.call('ZADD', K.leases, ARGV[6], ARGV[4])
return 1
