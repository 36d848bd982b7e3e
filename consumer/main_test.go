package consumer_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener lives as long as a *sql.DB
		// that a test helper opened and closed.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}
