package redisstore

import "github.com/redis/go-redis/v9"

// doneMarker is the value of a committed key. Tokens are 32 hex digits,
// so it never equals one.
const doneMarker = "done"

// commitScript marks KEYS[1] done for ARGV[2] ms when it holds our token
// ARGV[1], or when nobody holds it (our lease expired and nobody took it
// over). It returns 1 when committed, 0 when the key is done or another
// holder's.
var commitScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
  redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2])
  return 1
end
return 0
`)

// abortScript deletes KEYS[1] when it still holds our token ARGV[1].
var abortScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// beginScript is Begin for Redis before 7.0 (no SET NX GET): it returns
// {nil, lease ms} when it set our token, else {value, PTTL}.
var beginScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {false, tonumber(ARGV[2])}
end
return {v, redis.call('PTTL', KEYS[1])}
`)
