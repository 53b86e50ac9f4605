package redisstore

// UseBeginScript makes s begin with the Lua script, as with Redis < 7.0.
func UseBeginScript(s *Store) { s.legacy.Store(true) }
