package outbox

import (
	"time"

	"github.com/jackc/pgx/v5"
)

// SetAfterPublish sets the hook that runs after a batch was published and
// before it is marked.
func SetAfterPublish(o *Outbox, f func(conn *pgx.Conn)) { o.afterPublish = f }

// SetDBTimeout sets the bound of the relay's statements.
func SetDBTimeout(o *Outbox, d time.Duration) { o.dbTimeout = d }
