-- The anomaly monitor's windows, counted for every node on this server's clock.
--
-- KEYS[2i-1], KEYS[2i]: sighting i's window (a sorted set of members scored by the time
-- they were counted, in microseconds) and its alert marker (set for one window once an
-- alert was raised, so that only one node raises it, once per window).
-- ARGV[1]: the window, in microseconds.
-- ARGV[2i], ARGV[2i+1]: sighting i's member (a request id, or an address) and threshold.
--
-- Members older than the window are dropped, and at most `threshold` of the newest are
-- kept (all the evidence an alert needs). Returns, per sighting, {} or, when it made its
-- window reach the threshold and no alert was raised within the window, {count, first
-- member's time, up to three newest members}.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local window = tonumber(ARGV[1])
local ttl = math.ceil(window / 1000)
local out = {}
for i = 1, #KEYS / 2 do
  local key, alerted = KEYS[2 * i - 1], KEYS[2 * i]
  local member, threshold = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count > threshold then
    redis.call('ZREMRANGEBYRANK', key, 0, count - threshold - 1)
    count = threshold
  end
  redis.call('PEXPIRE', key, ttl)
  out[i] = {}
  if count >= threshold and redis.call('SET', alerted, '1', 'PX', ttl, 'NX') then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local crossing = {tostring(count), first[2]}
    for _, newest in ipairs(redis.call('ZREVRANGE', key, 0, 2)) do
      table.insert(crossing, newest)
    end
    out[i] = crossing
  end
end
return out
