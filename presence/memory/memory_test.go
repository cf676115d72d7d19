package memory_test

import (
	"testing"

	"github.com/parleychat/parley/presence"
	"github.com/parleychat/parley/presence/memory"
	"github.com/parleychat/parley/presence/presencetest"
)

func TestTracker(t *testing.T) {
	presencetest.Run(t, func(t *testing.T) presence.Tracker {
		p := memory.New()
		t.Cleanup(func() {
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return p
	})
}
