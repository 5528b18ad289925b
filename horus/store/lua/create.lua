-- A new pending job with its indexes; 0 if the id is taken.
-- KEYS: job, leases, retries, queued, index:all, index:runner:<r>, index:context:<c> or ''
-- ARGV: status index prefix, held prefix, done channel, id, created, retention, sending,
--       field, value, ...
if redis.call('EXISTS', K.job) == 1 then return 0 end
local id, created, retention = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
set_fields(K, 8)
redis.call('EXPIRE', K.job, retention)
local indexes = {KEYS[5], K.status .. 'pending', KEYS[6]}
if KEYS[7] ~= '' then table.insert(indexes, KEYS[7]) end
for _, index in ipairs(indexes) do
  redis.call('ZADD', index, created, id)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', created - retention)
end
-- sending: its message is about to be published; should it vanish, the sweeper sends it again
if ARGV[7] == '1' then redis.call('ZADD', K.queued, created, id) end
return 1
