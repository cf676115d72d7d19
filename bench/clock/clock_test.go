package clock

import (
	"context"
	"testing"
	"time"
)

func TestUnixNanoFollowsWallClock(t *testing.T) {
	a := UnixNano()
	b := UnixNano()
	if b < a {
		t.Fatalf("UnixNano went back: %d then %d", a, b)
	}
	if d := time.Duration(a - time.Now().UnixNano()); d > time.Second || d < -time.Second {
		t.Fatalf("UnixNano is %v off the wall clock", d)
	}
}

func TestFake(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(t0)
	if err := f.Sleep(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	f.Advance(-time.Hour) // ignored
	if got := f.Now(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("now = %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Sleep(ctx, time.Second); err == nil {
		t.Fatal("Sleep with a cancelled context succeeded")
	}
	if err := (Real{}).Sleep(ctx, time.Hour); err == nil {
		t.Fatal("real Sleep with a cancelled context succeeded")
	}
}
