-- Shared by every script that changes a job's status; prepended to each of them.
-- K holds the key names the caller passed (see horus/store/keys.py): no key name is
-- built here from anything but those.
local K = {job = KEYS[1], leases = KEYS[2], retries = KEYS[3], queued = KEYS[4],
           status = ARGV[1], held = ARGV[2], done = ARGV[3]}

-- The status index follows the status.
local function move(K, id, from, to)
  if from == to then return end
  local score = tonumber(redis.call('HGET', K.job, 'created_at'))
  redis.call('ZREM', K.status .. from, id)
  redis.call('ZADD', K.status .. to, score, id)
  redis.call('HSET', K.job, 'status', to)
end

-- A job that ends keeps its record for the retention period, leaves the retry and
-- republish sets, and wakes its waiters.
local function finish(K, id, to, retention)
  redis.call('EXPIRE', K.job, retention)
  redis.call('ZREM', K.retries, id)
  redis.call('ZREM', K.queued, id)
  redis.call('PUBLISH', K.done, to)
end

-- One attempt more in the job's history (a JSON list).
local function remember(K, entry)
  local h = redis.call('HGET', K.job, 'history')
  if not h or h == '' then h = '[' .. entry .. ']'
  else h = string.sub(h, 1, -2) .. ',' .. entry .. ']' end
  redis.call('HSET', K.job, 'history', h)
end

-- The attempt holds the job no more: no lease, not in its worker's held set.
local function release(K, id)
  redis.call('ZREM', K.leases, id)
  local worker = redis.call('HGET', K.job, 'worker')
  if worker then redis.call('SREM', K.held .. worker, id) end
end

-- Back to pending, to start again from `due` (epoch seconds).
local function requeue(K, id, due, retention)
  move(K, id, 'running', 'pending')
  redis.call('HSET', K.job, 'retry_at', due)
  redis.call('ZADD', K.retries, due, id)
  redis.call('EXPIRE', K.job, retention)
end

-- True while `attempt` is the running attempt of the job: the fence of every write an
-- attempt makes after its start.
local function owns(K, attempt)
  return redis.call('HGET', K.job, 'status') == 'running'
    and redis.call('HGET', K.job, 'attempt') == attempt
end

-- Set field/value pairs from ARGV[first], ARGV[first + 1], ...
local function set_fields(K, first)
  for i = first, #ARGV, 2 do redis.call('HSET', K.job, ARGV[i], ARGV[i + 1]) end
end
