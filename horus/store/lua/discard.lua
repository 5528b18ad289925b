-- Remove a pending record whose message could not be sent, with its index entries; one that
-- some worker already started is left alone.
-- KEYS: job, leases, retries, queued, index:all, index:runner:<r>, index:context:<c> or ''
-- ARGV: status index prefix, held prefix, done channel, id
local id = ARGV[4]
if redis.call('HGET', K.job, 'status') ~= 'pending' then return 0 end
if (redis.call('HGET', K.job, 'attempt') or '0') ~= '0' then return 0 end
redis.call('DEL', K.job)
for _, index in ipairs({KEYS[5], K.status .. 'pending', KEYS[6], KEYS[7]}) do
  if index ~= '' then redis.call('ZREM', index, id) end
end
redis.call('ZREM', K.queued, id)
return 1
