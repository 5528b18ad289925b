-- Start an attempt: pending -> running under a new attempt number (the fencing token) and
-- a lease; returns {'ok', attempt, tries, cancel request} or why it did not start.
-- KEYS: job, leases, retries, queued ; ARGV: prefixes..., id, worker, started_at,
--       lease_until, now, expired (1/0)
local id = ARGV[4]
-- An expired signature stops a first attempt only: a retry is not a replay.
if ARGV[9] == '1' and tonumber(redis.call('HGET', K.job, 'attempt') or '0') == 0 then
  return {'expired'}
end
local status = redis.call('HGET', K.job, 'status')
if not status then return {'missing'} end
if status ~= 'pending' then return {'refused', status} end
local due = tonumber(redis.call('HGET', K.job, 'retry_at') or '0')
if due > tonumber(ARGV[8]) + 1 then  -- a second of clock skew between machines is fine
  redis.call('ZADD', K.retries, due, id)  -- whatever happens, the retry stays
  return {'early', status}
end
local attempt = redis.call('HINCRBY', K.job, 'attempt', 1)
local tries = redis.call('HINCRBY', K.job, 'tries', 1)
move(K, id, 'pending', 'running')
redis.call('HSET', K.job, 'worker', ARGV[5], 'started_at', ARGV[6], 'lease', ARGV[7])
redis.call('HDEL', K.job, 'retry_at', 'exited')
redis.call('PERSIST', K.job)  -- a running job's record outlives the retention period
redis.call('ZADD', K.leases, ARGV[7], id)
redis.call('SADD', K.held .. ARGV[5], id)
redis.call('ZREM', K.retries, id)
redis.call('ZREM', K.queued, id)
return {'ok', tostring(attempt), tostring(tries), redis.call('HGET', K.job, 'cancel') or ''}
