-- End a job that no attempt holds: a pending job cancelled, or refused before it started.
-- A running job gets the request attached instead (``request`` not empty: a cancel), for its
-- worker to judge and honour.
-- KEYS: job, leases, retries, queued ; ARGV: prefixes..., id, to, retention, request,
--       field, value, ...
local id, to = ARGV[4], ARGV[5]
local status = redis.call('HGET', K.job, 'status')
if not status then return {'missing'} end
if status == 'pending' then
  set_fields(K, 8)
  move(K, id, 'pending', to)
  finish(K, id, to, tonumber(ARGV[6]))
  return {'ok', status}
end
if status == 'running' and ARGV[7] ~= '' then
  redis.call('HSET', K.job, 'cancel', ARGV[7])
  return {'requested', status}
end
return {'refused', status}
