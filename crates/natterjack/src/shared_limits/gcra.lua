-- One rate-limit decision over several GCRA buckets, atomically, on this server's clock.
--
-- KEYS: the buckets, in the order the policies apply.
-- ARGV[1]: "take", "peek" or "give".
-- ARGV[2i], ARGV[2i+1]: bucket i's emission interval T and tolerance tau, in microseconds
-- (decimals allowed: a quota of a million per second has T = 1).
--
-- Each key holds its theoretical arrival time (TAT) in microseconds and expires when the
-- bucket is full again, so a key that is gone and a full bucket decide alike.
--
-- Returns {0, 0} when every bucket allows (take: each gave one request), else {i, wait}:
-- bucket i (1-based) refused first, wait microseconds until it would allow; nothing taken.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local op = ARGV[1]

local function store(key, tat)
  local ttl = math.ceil((tat - now) / 1000)
  if ttl < 1 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, string.format('%.3f', tat), 'PX', ttl)
  end
end

if op == 'give' then
  for i, key in ipairs(KEYS) do
    local tat = tonumber(redis.call('GET', key))
    if tat then
      store(key, tat - tonumber(ARGV[2 * i]))
    end
  end
  return {0, 0}
end

local next_tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then
    tat = now
  end
  if tat - now > tolerance then
    return {i, math.ceil(tat - now - tolerance)}
  end
  next_tats[i] = tat + interval
end
if op == 'take' then
  for i, key in ipairs(KEYS) do
    store(key, next_tats[i])
  end
end
return {0, 0}
