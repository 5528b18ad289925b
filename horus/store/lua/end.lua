-- The one end of an attempt, whoever records it (its worker; the sweeper for a lost one;
-- a stopping worker handing it back): a terminal status, or back to pending to start again
-- at `due`. The verdict comes from horus.store.retry; this script applies it only while
-- the attempt owns the job (its fence) and, for a reclaim, only once its lease expired and
-- while its exit note is the one the verdict was made on.
-- KEYS: job, leases, retries, queued ; ARGV: prefixes..., id, attempt, to, retention, due,
--       history entry, tries delta, lost delta, expired by ('' or now), expected exit note,
--       field, value, ...
local id, attempt, to = ARGV[4], ARGV[5], ARGV[6]
local status = redis.call('HGET', K.job, 'status')
if not status then
  redis.call('ZREM', K.leases, id)
  return {'missing'}
end
if not owns(K, attempt) then
  if status ~= 'running' then redis.call('ZREM', K.leases, id) end  -- a stale lease entry
  return {'fenced', status}
end
if ARGV[12] ~= '' then
  local lease = tonumber(redis.call('HGET', K.job, 'lease') or '0')
  if lease > tonumber(ARGV[12]) then
    redis.call('ZADD', K.leases, lease, id)
    return {'alive', status}
  end
  if (redis.call('HGET', K.job, 'exited') or '') ~= ARGV[13] then return {'changed', status} end
end
remember(K, ARGV[9])
set_fields(K, 14)
release(K, id)
if ARGV[10] ~= '0' then redis.call('HINCRBY', K.job, 'tries', ARGV[10]) end
if ARGV[11] ~= '0' then redis.call('HINCRBY', K.job, 'lost', ARGV[11]) end
if to == 'pending' then
  requeue(K, id, ARGV[8], tonumber(ARGV[7]))
else
  move(K, id, 'running', to)
  finish(K, id, to, tonumber(ARGV[7]))
end
return {'ok', status}
