-- Note that the attempt's process exited with a code, before anything else is recorded:
-- should its worker die now, the sweeper knows the job ran to its end.
-- KEYS: job, leases, retries, queued ; ARGV: prefixes..., id, attempt, exit code
if not owns(K, ARGV[5]) then return 0 end
redis.call('HSET', K.job, 'exited', ARGV[5] .. ':' .. ARGV[6])
return 1
